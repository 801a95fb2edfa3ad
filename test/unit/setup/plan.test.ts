import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPlan, formatPlan, type SetupOptions } from '../../../src/setup/plan.ts';
import { PLATFORMS } from '../../../src/setup/platforms.ts';
import { checkCommand, shellQuote } from '../../../src/setup/check-command.ts';
import { refuseKeyless } from '../../../src/setup/identity.ts';
import { CdcError } from '../../../src/core/errors.ts';

const base: SetupOptions = {
  platform: 'generic',
  user: 'cap"user',
  userPassword: "s3cr'et",
  database: 'shop',
  tables: [{ schema: 'public', table: 'orders' }],
  schemas: ['public'],
  publication: 'pgcdc_pub',
  slot: 'pgcdc_slot',
  signalSchema: 'pgcdc',
  heartbeatSchema: undefined,
  replicaIdentityFull: true,
  major: 12,
  server: undefined,
  keyless: undefined,
  checkCommand: 'pgcdc check --source x',
};
const logicalServer = {
  walLevel: 'logical',
  maxReplicationSlots: 10,
  slotsInUse: 1,
  maxWalSenders: 10,
  sendersInUse: 1,
};

test('every platform prints a plan without the password, with its own replication grant', () => {
  for (const platform of PLATFORMS) {
    const text = formatPlan({ ...base, platform }, buildPlan({ ...base, platform }));
    assert.ok(!text.includes("s3cr''et") && !text.includes('s3cr'), platform);
    const rds = platform === 'rds' || platform.startsWith('aurora');
    assert.equal(text.includes('GRANT rds_replication TO "cap""user";'), rds, platform);
    assert.equal(text.includes('ALTER ROLE "cap""user" WITH REPLICATION;'), !rds, platform);
  }
});

test('the executed SQL carries the quoted password; every SQL step has a probe', () => {
  const steps = buildPlan(base);
  assert.ok(steps.some((s) => s.sql === `CREATE ROLE "cap""user" LOGIN PASSWORD 's3cr''et';`));
  assert.ok(steps.filter((s) => !s.manual).every((s) => s.probe?.includes(' as done')));
});

test('publish_via_partition_root only from PostgreSQL 13; ALL TABLES grants per schema', () => {
  assert.ok(!formatPlan(base, buildPlan(base)).includes('publish_via_partition_root'));
  const all = { ...base, tables: 'all' as const, major: 16 };
  const text = formatPlan(all, buildPlan(all));
  assert.match(text, /CREATE PUBLICATION "pgcdc_pub" FOR ALL TABLES WITH \(publish_via_partition_root = true\);/);
  assert.match(text, /ALTER DEFAULT PRIVILEGES IN SCHEMA "public" GRANT SELECT ON TABLES TO "cap""user";/);
});

test(
  'the parameters follow the server: no wal_level step when it is already logical, a note when setup could ' +
    'not look',
  () => {
    const plain = { ...base, user: 'cdc', replicaIdentityFull: false };
    const blind = formatPlan(plain, buildPlan(plain));
    assert.match(blind, /ALTER SYSTEM SET wal_level = 'logical'/);
    assert.match(blind, /not connected \(no --admin-url\), so the server's wal_level is unknown/);
    assert.match(blind, /tables without a primary key could not be looked for/);
    const known = { ...plain, server: logicalServer, keyless: [] };
    const text = formatPlan(known, buildPlan(known));
    assert.doesNotMatch(text, /ALTER SYSTEM SET wal_level/);
    assert.match(text, /wal_level is already logical on this server/);
    assert.match(text, /max_replication_slots = 10 \(1 in use\), max_wal_senders = 10 \(1 in use\): room for pgcdc/);
    assert.doesNotMatch(text, /not connected/);
    const replica = { ...known, server: { ...logicalServer, walLevel: 'replica' } };
    assert.match(
      formatPlan(replica, buildPlan(replica)),
      /wal_level is replica on this server[^]*ALTER SYSTEM SET wal_level = 'logical'/,
    );
    const rds = { ...known, platform: 'rds' as const };
    assert.doesNotMatch(formatPlan(rds, buildPlan(rds)), /rds\.logical_replication = 1/);
  },
);

test(
  'the pg_hba hint names the given user and database, and no "replication" line logical replication does ' + 'not use',
  () => {
    const plain = { ...base, user: 'cdc', database: 'shop', replicaIdentityFull: false };
    const text = formatPlan(plain, buildPlan(plain));
    assert.match(text, /host shop cdc <address> scram-sha-256/);
    assert.doesNotMatch(text, /pgcdc_user|"replication" connections/);
  },
);

test('informational lines are not listed as still to do by --apply', () => {
  const known = { ...base, server: logicalServer, keyless: [] };
  const notes = buildPlan(known)
    .filter((s) => s.note)
    .map((s) => s.title);
  assert.ok(
    notes.some((n) => n.startsWith('wal_level is already logical')),
    notes.join('\n'),
  );
});

test('keyless tables: refused without --replica-identity-full, made FULL with it', () => {
  const keyless = [{ schema: 'public', table: 'events_log', reason: 'no-key' as const }];
  assert.throws(
    () => refuseKeyless(keyless, false, false),
    (e: unknown) =>
      e instanceof CdcError &&
      e.code === 'USAGE' &&
      /public\.events_log \(no primary key and REPLICA IDENTITY DEFAULT\)/.test(e.message) &&
      /UPDATE and DELETE/.test(e.message) &&
      /--replica-identity-full/.test(e.hint ?? '') &&
      /--exclude-tables/.test(e.hint ?? ''),
  );
  refuseKeyless(keyless, true, false);
  refuseKeyless([], false, false);
  const all = { ...base, tables: 'all' as const, server: logicalServer, keyless };
  const text = formatPlan(all, buildPlan(all));
  assert.match(
    text,
    new RegExp(
      /-- public\.events_log: no primary key and REPLICA IDENTITY DEFAULT: /.source +
        /FULL keeps its UPDATE and DELETE working once published\n/.source +
        /ALTER TABLE "public"\."events_log" REPLICA IDENTITY FULL;/.source,
    ),
  );
});

test('the check command repeats what setup was given, quoted for the shell, never a password', () => {
  const command = checkCommand({
    host: 'db.example.com',
    port: 6432,
    database: 'shop',
    user: 'cdc',
    sslmode: 'verify-full',
    sslrootcert: '/etc/ca.pem',
    tables: 'public.orders,sales.*',
    tablesFile: undefined,
    excludeTables: 'sales.tmp_*',
    slot: 's1',
    publication: 'p1',
    signalTable: 'pgcdc.pgcdc_signal',
  });
  assert.equal(
    command,
    "pgcdc check --source 'postgres://cdc@db.example.com:6432/shop?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem' " +
      ("--tables 'public.orders,sales.*' --exclude-tables 'sales.tmp_*' --signal-table pgcdc.pgcdc_signal " +
        '--slot s1 --publication p1'),
  );
  const blind = checkCommand({
    host: undefined,
    port: undefined,
    database: 'shop',
    user: 'cdc',
    sslmode: undefined,
    sslrootcert: undefined,
    tables: undefined,
    tablesFile: 't.csv',
    excludeTables: undefined,
    slot: 'pgcdc_slot',
    publication: 'pgcdc_pub',
    signalTable: undefined,
  });
  assert.equal(
    blind,
    "pgcdc check --source 'postgres://cdc@<host>:<port>/shop' --tables-file t.csv --slot pgcdc_slot " +
      '--publication pgcdc_pub',
  );
  assert.equal(shellQuote("it's"), "'it'\\''s'");
});
