/**
 * The demo's shop: its schema, seed rows and a workload of realistic multi-statement transactions.
 * Used only by `pgcdc demo`; the verification that replays events lives in demo-verify.ts.
 *
 * The column types are picked to exercise the value conversions users hit most: numeric (money
 * amounts), jsonb, timestamptz, text[] arrays, bytea, an enum, uuid, and a composite primary key.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';

export const SHOP_TABLES = ['shop.customers', 'shop.products', 'shop.orders', 'shop.order_items'] as const;
/**
 * The one table with REPLICA IDENTITY FULL: its update events carry the old row (`before`), so the
 * demo can show real old→new diffs; the others keep the default identity (no `before` on updates).
 */
export const SHOP_DIFF_TABLE = 'shop.orders';

export const SHOP_DDL = `
create schema shop;
create type shop.order_status as enum ('pending', 'paid', 'shipped', 'delivered', 'cancelled');
create table shop.customers (
  id bigint generated always as identity primary key,
  email text not null unique,
  name text not null,
  tags text[] not null default '{}',
  created_at timestamptz not null default now()
);
create table shop.products (
  id uuid primary key,
  sku text not null unique,
  name text not null,
  price numeric(10,2) not null,
  attributes jsonb not null default '{}',
  thumbnail bytea,
  stock integer not null,
  updated_at timestamptz not null default now()
);
create table shop.orders (
  id bigint generated always as identity primary key,
  customer_id bigint not null references shop.customers,
  status shop.order_status not null default 'pending',
  total numeric(12,2) not null default 0,
  shipping jsonb not null,
  placed_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table ${SHOP_DIFF_TABLE} replica identity full;
create table shop.order_items (
  order_id bigint not null references shop.orders on delete cascade,
  line_no smallint not null,
  product_id uuid not null references shop.products,
  quantity integer not null,
  unit_price numeric(10,2) not null,
  primary key (order_id, line_no)
);`;

const FIRST = [
  'Ada',
  'Grace',
  'Linus',
  'Margaret',
  'Ken',
  'Barbara',
  'Edsger',
  'Frances',
  'Dennis',
  'Radia',
  'Niklaus',
  'Shafi',
];
const LAST = [
  'Lovelace',
  'Hopper',
  'Torvalds',
  'Hamilton',
  'Thompson',
  'Liskov',
  'Dijkstra',
  'Allen',
  'Ritchie',
  'Perlman',
  'Wirth',
];
const PRODUCTS = [
  'Espresso beans',
  'Pour-over kettle',
  'Ceramic mug',
  'Burr grinder',
  'Milk frother',
  'Tea sampler',
  'Cold brew jar',
  'Scale',
  'Filter papers',
  'Travel tumbler',
];
const CITIES = [
  ['Lisbon', 'PT'],
  ['Montréal', 'CA'],
  ['Osaka', 'JP'],
  ['Nairobi', 'KE'],
  ['Berlin', 'DE'],
  ['Austin', 'US'],
] as const;
const TAGS = ['vip', 'newsletter', 'wholesale', 'b2b', 'returning', 'beta'];
const NEXT_STATUS: Record<string, string> = { pending: 'paid', paid: 'shipped', shipped: 'delivered' };

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)] as T;
}

function between(low: number, high: number): number {
  return low + Math.floor(Math.random() * (high - low + 1));
}

function shipping(): string {
  const [city, country] = pick(CITIES);
  return JSON.stringify({
    method: pick(['standard', 'express', 'pickup']),
    address: { city, country, zip: String(between(10000, 99999)) },
  });
}

async function one<T extends pg.QueryResultRow>(
  client: pg.Client,
  sql: string,
  params: unknown[] = [],
): Promise<T | undefined> {
  return (await client.query<T>(sql, params)).rows[0];
}

async function addCustomer(client: pg.Client): Promise<string> {
  const name = `${pick(FIRST)} ${pick(LAST)}`;
  const email = `${name.toLowerCase().replace(' ', '.')}.${randomUUID().slice(0, 6)}@example.com`;
  const tags = Math.random() < 0.5 ? [pick(TAGS)] : [];
  const row = await one<{ id: string }>(
    client,
    'insert into shop.customers (email, name, tags) values ($1, $2, $3) returning id',
    [email, name, tags],
  );
  return row?.id ?? '0';
}

async function addProduct(client: pg.Client, name: string): Promise<void> {
  const attributes = {
    colour: pick(['black', 'white', 'sage', 'terracotta']),
    weight_g: between(80, 2400),
    tags: [pick(TAGS)],
  };
  await client.query(
    'insert into shop.products (id, sku, name, price, attributes, thumbnail, stock) values ($1, $2, $3, $4, ' +
      '$5, $6, $7)',
    [
      randomUUID(),
      `SKU-${randomUUID().slice(0, 8).toUpperCase()}`,
      name,
      (between(300, 9900) / 100).toFixed(2),
      JSON.stringify(attributes),
      randomBytes(between(8, 24)),
      between(20, 500),
    ],
  );
}

/** An order with 1-4 lines; stock goes down and the total is computed from the lines. */
async function placeOrder(client: pg.Client): Promise<void> {
  const customer =
    Math.random() < 0.25
      ? await addCustomer(client)
      : (await one<{ id: string }>(client, 'select id from shop.customers order by random() limit 1'))?.id;
  if (customer === undefined) return;
  const order = await one<{ id: string }>(
    client,
    'insert into shop.orders (customer_id, shipping) values ($1, $2) returning id',
    [customer, shipping()],
  );
  const products = await client.query<{ id: string; price: string }>(
    'select id, price from shop.products order by random() limit $1',
    [between(1, 4)],
  );
  let line = 0;
  for (const product of products.rows) {
    const quantity = between(1, 3);
    await client.query('insert into shop.order_items values ($1, $2, $3, $4, $5)', [
      order?.id,
      ++line,
      product.id,
      quantity,
      product.price,
    ]);
    await client.query('update shop.products set stock = stock - $2, updated_at = now() where id = $1', [
      product.id,
      quantity,
    ]);
  }
  await client.query(
    'update shop.orders set total = (select coalesce(sum(quantity * unit_price), 0) from shop.order_items ' +
      'where order_id = $1) where id = $1',
    [order?.id],
  );
}

async function advanceOrder(client: pg.Client): Promise<void> {
  const order = await one<{ id: string; status: string }>(
    client,
    "select id, status from shop.orders where status in ('pending', 'paid', 'shipped') order by random() limit 1",
  );
  if (!order) return placeOrder(client);
  const next = NEXT_STATUS[order.status] ?? 'delivered';
  const tracking = next === 'shipped' ? { tracking: `1Z${randomUUID().slice(0, 10).toUpperCase()}` } : {};
  await client.query(
    'update shop.orders set status = $2, shipping = shipping || $3::jsonb, updated_at = now() where id = $1',
    [order.id, next, JSON.stringify(tracking)],
  );
}

/** A customer changes a line of an open order: composite-key update, or a removed line. */
async function changeLine(client: pg.Client): Promise<void> {
  const item = await one<{ order_id: string; line_no: number }>(
    client,
    'select i.order_id, i.line_no from shop.order_items i join shop.orders o on o.id = i.order_id where ' +
      "o.status = 'pending' order by random() limit 1",
  );
  if (!item) return placeOrder(client);
  if (Math.random() < 0.3)
    await client.query('delete from shop.order_items where order_id = $1 and line_no = $2', [
      item.order_id,
      item.line_no,
    ]);
  else
    await client.query('update shop.order_items set quantity = quantity + 1 where order_id = $1 and line_no = $2', [
      item.order_id,
      item.line_no,
    ]);
  await client.query(
    'update shop.orders set total = (select coalesce(sum(quantity * unit_price), 0) from shop.order_items ' +
      'where order_id = $1), updated_at = now() where id = $1',
    [item.order_id],
  );
}

async function cancelOrder(client: pg.Client): Promise<void> {
  const order = await one<{ id: string }>(
    client,
    "select id from shop.orders where status in ('pending', 'paid') order by random() limit 1",
  );
  if (!order) return;
  await client.query('delete from shop.order_items where order_id = $1', [order.id]);
  await client.query("update shop.orders set status = 'cancelled', total = 0, updated_at = now() where id = $1", [
    order.id,
  ]);
}

/** Old finished orders are purged; ON DELETE CASCADE removes their lines (deletes in the stream too). */
async function purgeOrder(client: pg.Client): Promise<void> {
  await client.query(
    "delete from shop.orders where id = (select id from shop.orders where status in ('delivered', 'cancelled') " +
      'order by id limit 1)',
  );
}

async function reprice(client: pg.Client): Promise<void> {
  const factor = pick(['0.90', '0.95', '1.05', '1.10']);
  await client.query(
    `update shop.products set price = round(price * $1::numeric, 2), attributes = jsonb_set(attributes, ` +
      `'{on_sale}', to_jsonb($1::numeric < 1)), updated_at = now()
      where id = (select id from shop.products order by random() limit 1)`,
    [factor],
  );
  if (Math.random() < 0.3)
    await client.query('update shop.products set stock = stock + 100, thumbnail = $1 where stock < 100', [
      randomBytes(16),
    ]);
}

async function touchCustomer(client: pg.Client): Promise<void> {
  if (Math.random() < 0.2) {
    // Customers who never ordered are forgotten (a delete on a table with a bigint identity key).
    await client.query(
      'delete from shop.customers where id = (select id from shop.customers c where not exists (select 1 from ' +
        'shop.orders o where o.customer_id = c.id) limit 1)',
    );
    return;
  }
  await client.query(
    `update shop.customers set tags = case when $1 = any(tags) then array_remove(tags, $1) else ` +
      `array_append(tags, $1) end
      where id = (select id from shop.customers order by random() limit 1)`,
    [pick(TAGS)],
  );
}

const KINDS: readonly [number, (client: pg.Client) => Promise<void>][] = [
  [35, placeOrder],
  [25, advanceOrder],
  [12, changeLine],
  [8, cancelOrder],
  [6, purgeOrder],
  [8, reprice],
  [6, touchCustomer],
];

/** The first transactions show every kind of change (deletes included) whatever the dice say. */
const OPENING: readonly ((client: pg.Client) => Promise<void>)[] = [
  placeOrder,
  advanceOrder,
  cancelOrder,
  reprice,
  changeLine,
  touchCustomer,
];

async function inTransaction(client: pg.Client, body: () => Promise<void>): Promise<void> {
  await client.query('begin');
  try {
    await body();
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  }
}

export async function createShop(client: pg.Client): Promise<void> {
  await client.query(SHOP_DDL);
}

/** A few customers, products and orders, in one transaction. */
export async function seedShop(client: pg.Client): Promise<void> {
  await inTransaction(client, async () => {
    for (let i = 0; i < 6; i++) await addCustomer(client);
    for (const name of PRODUCTS) await addProduct(client, name);
    for (let i = 0; i < 4; i++) await placeOrder(client);
  });
}

/** Runs random shop transactions at about `rate` per second until `stop()`. */
export class ShopWorkload {
  readonly done: Promise<void>;
  transactions = 0;
  private stopping = false;
  private wake: (() => void) | undefined;

  constructor(client: pg.Client, rate: number, onError: (error: unknown) => void) {
    this.done = this.loop(client, rate, onError);
  }

  /** Resolves once the transaction in flight (if any) has finished. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.done;
  }

  private async loop(client: pg.Client, rate: number, onError: (error: unknown) => void): Promise<void> {
    const total = KINDS.reduce((sum, [weight]) => sum + weight, 0);
    while (!this.stopping) {
      let roll = Math.random() * total;
      const kind = OPENING[this.transactions] ?? KINDS.find(([weight]) => (roll -= weight) < 0)?.[1] ?? placeOrder;
      try {
        await inTransaction(client, () => kind(client));
        this.transactions++;
      } catch (error) {
        onError(error);
        return;
      }
      // Jittered pauses look more like real traffic than a metronome.
      const pause = (1000 / rate) * (0.5 + Math.random());
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pause);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}
