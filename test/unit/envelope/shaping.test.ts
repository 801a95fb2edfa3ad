/** Per-table shaping rules on the serializer's output: columns, masks, truncation, dropped ops, routing, rule order. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { topicName } from '../../../src/envelope/topics.ts';
import { truncateText } from '../../../src/envelope/row-writer.ts';
import { checkLine } from '../../harness/connect-conformance.ts';
import { SALT, namingFor, serializer, table, writeChange, writeKeyChange, writeRead } from './shaping-helpers.ts';
import type { ConfigInput } from '../../../src/config.ts';

const users = table(
  'public.users',
  [
    ['id', 23],
    ['email', 25],
    ['name', 25],
    ['password_hash', 25],
    ['bio', 25],
    ['avatar', 17],
    ['score', 1700],
  ],
  [0],
);
const row = ['7', 'ann@example.com', 'Ann', 'secret', 'héllo wörld 😀 and more', '\\x0102030405', '12.50'];
const hash = (json: string, salt = SALT): string =>
  createHash('sha256').update(salt).update(json, 'utf8').digest('hex');
const shaped = (rule: Record<string, unknown>, extra: ConfigInput = {}): ConfigInput => ({
  ...extra,
  shaping: { salt: { env: 'SALT' }, rules: [{ tables: ['public.users'], ...rule }] },
});

test('include and exclude shape before and after; the key keeps its columns', () => {
  const s = serializer(users, namingFor(shaped({ include: ['email', 'name', 'bio'], exclude: ['bio'] })));
  const u = writeChange(s, 'u', row, row, row).event as unknown as {
    key: unknown;
    value: { before: unknown; after: unknown };
  };
  assert.deepEqual(u.key, { id: 7 }, 'the key column is kept in the key though not included');
  assert.deepEqual(u.value.after, { email: 'ann@example.com', name: 'Ann' });
  assert.deepEqual(u.value.before, { email: 'ann@example.com', name: 'Ann' });
  const flat = serializer(
    users,
    namingFor(shaped({ exclude: ['password_hash', 'avatar'] }, { envelope: { type: 'flat' } })),
  );
  const value = writeRead(flat, row).event.value ?? {};
  assert.deepEqual(Object.keys(value).slice(0, 5), ['id', 'email', 'name', 'bio', 'score']);
});

test('masks: hash is SHA-256 of the salt and the JSON text, fixed replaces the value; null stays null', () => {
  const s = serializer(
    users,
    namingFor(shaped({ mask: { email: 'hash', score: 'hash', avatar: 'hash', name: { fixed: '***' } } })),
  );
  const after = (writeChange(s, 'c', row, null, row).event.value as { after: Record<string, unknown> }).after;
  assert.equal(after.email, hash('"ann@example.com"'));
  assert.equal(after.score, hash('"12.50"'), 'numeric is written as a string by default: its JSON text is quoted');
  assert.equal(after.avatar, hash('"AQIDBAU="'), 'bytea: the hash of its base64 JSON string');
  assert.equal(after.name, '***');
  assert.equal(after.id, 7);
  const nulls = (
    writeChange(s, 'c', row, null, ['8', null, null, null, null, null, null]).event.value as {
      after: Record<string, unknown>;
    }
  ).after;
  assert.deepEqual([nulls.email, nulls.name], [null, null]);
  // Another salt, another hash: the salt is what keeps the hash from being looked up.
  const other = serializer(users, namingFor(shaped({ mask: { email: 'hash' } }), { SALT: 'another' }));
  const otherAfter = (writeChange(other, 'c', row, null, row).event.value as { after: Record<string, unknown> }).after;
  assert.equal(otherAfter.email, hash('"ann@example.com"', 'another'));
});

test('a hash mask on a key column masks the key too, in the key and the headers of a key change', () => {
  const s = serializer(users, namingFor(shaped({ mask: { id: 'hash' } }, { envelope: { type: 'flat' } })));
  const c = writeChange(s, 'c', row, null, row).event;
  assert.deepEqual(c.key, { id: hash('7') });
  assert.equal(c.value?.id, hash('7'));
  const [del, create] = writeKeyChange(s, row, ['9', ...row.slice(1)]);
  assert.deepEqual(del.event.key, { id: hash('7') });
  assert.deepEqual(del.event.headers, { '__debezium.newkey': { id: hash('9') } });
  assert.deepEqual(create.event.headers, { '__debezium.oldkey': { id: hash('7') } });
});

test('truncate: text to N code points, bytea to N bytes; the key is never truncated', () => {
  const s = serializer(users, namingFor(shaped({ truncate: { bio: 13, avatar: 2, email: 3 } })));
  const after = (writeRead(s, row).event.value as { after: Record<string, unknown> }).after;
  assert.equal(after.bio, 'héllo wörld 😀', 'a surrogate pair counts as one character and is never split');
  assert.equal(after.avatar, 'AQI=', 'the first two bytes');
  assert.equal(after.email, 'ann');
  assert.equal(truncateText('abc', 5), 'abc');
  assert.equal(truncateText('😀😀😀', 2), '😀😀');
  const keyed = table(
    'public.users',
    [
      ['code', 25],
      ['v', 25],
    ],
    [0],
  );
  const k = serializer(keyed, namingFor(shaped({ truncate: { code: 2 } })));
  const event = writeChange(k, 'c', ['abcdef', 'x'], null, ['abcdef', 'x']).event;
  assert.deepEqual(event.key, { code: 'abcdef' });
  assert.equal((event.value as { after: { code: string } }).after.code, 'ab');
});

test('drop: the serializer says which ops its table drops', () => {
  assert.equal(serializer(users, namingFor({})).drops, null);
  assert.deepEqual(serializer(users, namingFor(shaped({ drop: ['d', 'u'] }))).drops, {
    c: false,
    u: true,
    d: true,
    t: false,
  });
});

test('topic templates route tables; the first matching rule wins; other tables keep their topic', () => {
  const naming = namingFor({
    shaping: {
      rules: [
        { tables: ['tenant_a.orders'], topic: '{prefix}.vip.{table}' },
        { tables: ['tenant_*.orders', 'public.orders_2*'], topic: '{prefix}.all.orders', exclude: ['note'] },
        { tables: ['tenant_a.*'], topic: 'never.{schema}' },
      ],
    },
  });
  const name = (schema: string, t: string) => topicName(naming, { schema, table: t });
  assert.equal(name('tenant_a', 'orders'), 'shop.vip.orders');
  assert.equal(name('tenant_b', 'orders'), 'shop.all.orders');
  assert.equal(name('public', 'orders_2025'), 'shop.all.orders');
  assert.equal(name('tenant_a', 'items'), 'never.tenant_a');
  assert.equal(name('public', 'users'), 'shop.public.users');
  const t = table(
    'tenant_b.orders',
    [
      ['id', 23],
      ['note', 25],
    ],
    [0],
  );
  const s = serializer(t, naming);
  const c = writeChange(s, 'c', ['1', 'x'], null, ['1', 'x']);
  assert.equal(c.topic, 'shop.all.orders');
  assert.deepEqual((c.event.value as { after: unknown }).after, { id: 1 });
  const database = namingFor({ shaping: { rules: [{ tables: ['public.*'], topic: '{database}-{schema}_{table}' }] } });
  assert.equal(topicName(database, { schema: 'public', table: 'x' }), 'shopdb-public_x');
});

test('json-with-schema describes the shaped rows: masked columns are strings, excluded ones are gone', () => {
  for (const type of ['debezium', 'flat'] as const) {
    const s = serializer(
      users,
      namingFor(
        shaped(
          {
            exclude: ['password_hash'],
            mask: { id: 'hash', score: 'hash', name: { fixed: 'x' } },
            truncate: { bio: 3 },
          },
          { envelope: { type, format: 'json-with-schema' } },
        ),
      ),
    );
    const lines = [writeChange(s, 'c', row, null, row).line, writeRead(s, row).line];
    for (const line of lines) assert.deepEqual(checkLine(line), [], `${type}: ${line}`);
    assert.ok(!lines[0]?.includes('password_hash'), type);
  }
});

test('a rule that names a column the table lacks, a fixed mask on a key, or a truncated number is refused', () => {
  const refused = (rule: Record<string, unknown>, message: RegExp) =>
    assert.throws(
      () => serializer(users, namingFor(shaped(rule))),
      (error: Error) => {
        assert.match(error.message, message);
        assert.equal(error.message.split('\n').length, 1);
        return true;
      },
    );
  refused({ mask: { emial: 'hash' } }, /^shaping\.rules\.0\.mask\.emial: public\.users has no column "emial"$/);
  refused({ exclude: ['nope'] }, /^shaping\.rules\.0\.exclude: public\.users has no column "nope"$/);
  refused({ mask: { id: { fixed: '0' } } }, /^shaping\.rules\.0\.mask\.id: id is a key column of public\.users/);
  refused(
    { truncate: { score: 3 } },
    /^shaping\.rules\.0\.truncate\.score: public\.users\.score is not a text or bytea/,
  );
});

test('the salt: from a file (trailing newline ignored) or the environment; missing: one line without it', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-salt-'));
  try {
    const file = path.join(dir, 'salt');
    await writeFile(file, `${SALT}\n`);
    const config: ConfigInput = {
      shaping: { salt: { file }, rules: [{ tables: ['public.users'], mask: { email: 'hash' } }] },
    };
    const s = serializer(users, namingFor(config));
    const after = (writeChange(s, 'c', row, null, row).event.value as { after: Record<string, unknown> }).after;
    assert.equal(after.email, hash('"ann@example.com"'));
    // A salt that is not UTF-8 text is hashed as its bytes.
    const binary = Buffer.from([0xff, 0xfe, 0x41]);
    await writeFile(file, binary);
    const raw = (
      writeChange(serializer(users, namingFor(config)), 'c', row, null, row).event.value as {
        after: Record<string, unknown>;
      }
    ).after;
    assert.equal(raw.email, createHash('sha256').update(binary).update('"ann@example.com"').digest('hex'));
    await writeFile(file, '');
    assert.throws(() => namingFor(config), /^Error: shaping\.salt\.file: .* is empty$|shaping\.salt\.file: .*is empty/);
    const missing = path.join(dir, 'missing');
    assert.throws(
      () => namingFor({ shaping: { salt: { file: missing }, rules: [{ tables: ['public.users'] }] } }),
      /shaping\.salt\.file: cannot read .*missing \(ENOENT\)/,
    );
    assert.throws(
      () => namingFor(shaped({ mask: { email: 'hash' } }), {}),
      (error: Error) => {
        assert.equal(error.message, 'shaping.salt.env: the environment variable SALT is not set or empty');
        return true;
      },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
