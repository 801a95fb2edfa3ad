import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate, poolerFromError, poolerFromHost, type PreflightInput } from '../../../src/preflight/rules.ts';
import { formatReport, reportJson } from '../../../src/preflight/problem.ts';
import type { TableFacts } from '../../../src/preflight/facts.ts';

const table = (over: Partial<TableFacts> = {}): TableFacts => ({
  oid: 1,
  schema: 'public',
  table: 'orders',
  kind: 'r',
  isPartition: false,
  replicaIdentity: 'f',
  primaryKey: ['id'],
  canSelect: true,
  canWrite: false,
  owned: false,
  leaves: [],
  ...over,
});

function input(over: Partial<PreflightInput> = {}): PreflightInput {
  return {
    mode: 'check',
    host: 'db.example.com',
    database: 'shop',
    sslmode: 'verify-full',
    settings: {
      versionNum: 160004,
      major: 16,
      walLevel: 'logical',
      rdsLogicalReplication: undefined,
      maxReplicationSlots: 10,
      maxWalSenders: 10,
      usedSlots: 0,
      activeSenders: 0,
      walSenderTimeoutMs: 60_000,
      inRecovery: false,
      hotStandbyFeedback: false,
    },
    role: {
      name: 'pgcdc_user',
      superuser: false,
      replication: true,
      rdsReplication: undefined,
      canCreateInDatabase: false,
    },
    tls: { inUse: true, version: 'TLSv1.3' },
    tables: [table()],
    unmatched: [],
    tablesFromPublication: false,
    publicationName: 'pgcdc_pub',
    publication: {
      exists: true,
      allTables: false,
      viaRoot: true,
      publishesUpdateOrDelete: true,
      tables: new Set([JSON.stringify(['public', 'orders'])]),
    },
    createPublication: true,
    slotName: 'pgcdc_slot',
    slot: undefined,
    signal: undefined,
    ...over,
  };
}
const codes = (i: PreflightInput): string[] => evaluate(i).map((p) => `${p.severity}:${p.code}`);

test('a good setup has no problems', () => {
  assert.deepEqual(codes(input()), []);
});

test("poolers recognised by host name and by PgBouncer's error", () => {
  assert.equal(poolerFromHost('ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech')?.code, 'pooler-neon');
  assert.match(
    poolerFromHost('ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech')?.fix ?? '',
    /ep-cool-darkness-123456\.us-east-2/,
  );
  assert.equal(poolerFromHost('aws-0-eu-central-1.pooler.supabase.com')?.code, 'pooler-supavisor');
  assert.equal(poolerFromHost('myproxy.proxy-abc123xyz.us-east-1.rds.amazonaws.com')?.code, 'pooler-rds-proxy');
  assert.equal(poolerFromHost('mydb.abc123xyz.us-east-1.rds.amazonaws.com'), undefined);
  assert.equal(poolerFromError('unsupported startup parameter: replication')?.code, 'pooler-pgbouncer');
  assert.deepEqual(codes(input({ host: 'x-pooler.neon.tech' })), ['error:pooler-neon']);
});

test('wal_level: the fix names rds.logical_replication on RDS', () => {
  const rds = evaluate(input({ settings: { ...input().settings, walLevel: 'replica', rdsLogicalReplication: 'off' } }));
  assert.match(rds[0]?.fix ?? '', /rds\.logical_replication = 1/);
});

test('standby: an error before 16; a warning from 16, hot_standby_feedback required', () => {
  const s = input().settings;
  assert.deepEqual(codes(input({ settings: { ...s, major: 15, versionNum: 150004, inRecovery: true } })), [
    'error:standby',
  ]);
  assert.deepEqual(codes(input({ settings: { ...s, inRecovery: true } })), [
    'warning:standby',
    'error:hot-standby-feedback',
  ]);
  assert.deepEqual(codes(input({ settings: { ...s, inRecovery: true, hotStandbyFeedback: true } })), [
    'warning:standby',
  ]);
});

test('headroom, timeouts and privileges', () => {
  const s = input().settings;
  assert.deepEqual(codes(input({ settings: { ...s, usedSlots: 10, activeSenders: 10, walSenderTimeoutMs: 5000 } })), [
    'error:slots-exhausted',
    'error:senders-exhausted',
    'warning:wal-sender-timeout',
  ]);
  const role = { ...input().role, replication: false, rdsReplication: false };
  const [p] = evaluate(input({ role }));
  assert.equal(p?.fix, 'GRANT rds_replication TO "pgcdc_user";');
});

test('TLS: off and unverified are warnings', () => {
  assert.deepEqual(codes(input({ tls: { inUse: false, version: undefined } })), ['warning:tls-off']);
  assert.deepEqual(codes(input({ sslmode: 'require' })), ['warning:tls-unverified']);
});

test('replica identity per table', () => {
  assert.deepEqual(codes(input({ tables: [table({ replicaIdentity: 'd', primaryKey: [] })] })), [
    'error:replica-identity-missing',
  ]);
  assert.deepEqual(codes(input({ tables: [table({ replicaIdentity: 'n' })] })), ['error:replica-identity-missing']);
  assert.deepEqual(codes(input({ tables: [table({ replicaIdentity: 'd' })] })), ['warning:replica-identity-default']);
  assert.deepEqual(codes(input({ tables: [table({ replicaIdentity: 'i' })] })), []);
});

test('publication: missing (creatable or not), coverage, via root, run mode leaves creation to the capture', () => {
  const none = {
    exists: false,
    allTables: false,
    viaRoot: false,
    publishesUpdateOrDelete: true,
    tables: new Set<string>(),
  };
  assert.deepEqual(codes(input({ publication: none })), ['error:publication-missing']);
  const owner = { ...input().role, canCreateInDatabase: true };
  assert.deepEqual(codes(input({ publication: none, role: owner, tables: [table({ owned: true })] })), [
    'warning:publication-missing',
  ]);
  assert.deepEqual(codes(input({ publication: none, mode: 'run' })), []);
  const part = table({ table: 'm', kind: 'p', leaves: [JSON.stringify(['public', 'm_1'])] });
  const pub = { ...input().publication, viaRoot: false, tables: new Set([JSON.stringify(['public', 'm_1'])]) };
  assert.deepEqual(codes(input({ tables: [part], publication: pub })), ['warning:partition-root']);
  assert.deepEqual(codes(input({ tables: [table({ table: 'other' })] })), ['error:publication-coverage']);
});

test('slot state', () => {
  const slot = {
    name: 'pgcdc_slot',
    plugin: 'pgoutput',
    slotType: 'logical',
    database: 'shop',
    active: false,
    activePid: null,
    confirmedFlush: undefined,
    restartLsn: undefined,
    walStatus: 'reserved',
    safeWalSize: undefined,
  };
  assert.deepEqual(codes(input({ slot })), []);
  assert.deepEqual(codes(input({ slot: { ...slot, active: true, activePid: 42, walStatus: 'lost' } })), [
    'error:slot-active',
    'error:slot-lost',
  ]);
  assert.deepEqual(codes(input({ slot: { ...slot, safeWalSize: 1024 } })), ['warning:slot-safe-wal-size']);
  assert.deepEqual(codes(input({ slot: { ...slot, plugin: 'wal2json' } })), ['error:slot-plugin']);
  assert.deepEqual(codes(input({ slot: { ...slot, walStatus: 'lost' }, mode: 'run' })), []);
});

test('report formats: grouped text and JSON', () => {
  const problems = evaluate(input({ sslmode: 'require', tables: [table({ replicaIdentity: 'n' })] }));
  const text = formatReport({ target: 'u@h:5432/db', notes: ['n1'], problems });
  assert.match(
    text,
    new RegExp(
      /Errors \(1\):\n {2}- \[replica-identity-missing\][^\n]*\n {6}fix: [^\n]*ALTER TABLE[\s\S]*/.source +
        /Warnings \(1\):[\s\S]*FAILED: 1 error, 1 warning/.source,
    ),
  );
  const json = JSON.parse(reportJson({ target: 't', notes: [], problems })) as {
    ok: boolean;
    errors: unknown[];
    warnings: unknown[];
  };
  assert.deepEqual([json.ok, json.errors.length, json.warnings.length], [false, 1, 1]);
});

test(
  'publication-extra-tables: published tables outside the selection, with the DROP TABLE or a publication ' +
    'of its own',
  () => {
    const extra = [
      { schema: 'public', table: 'b' },
      { schema: 'public', table: 'c' },
    ];
    const found = evaluate(input({ extraPublished: extra })).find((p) => p.code === 'publication-extra-tables');
    assert.equal(found?.severity, 'warning');
    assert.match(
      found?.message ?? '',
      /publication pgcdc_pub also publishes public\.b, public\.c, outside the selected tables/,
    );
    assert.match(
      found?.fix ?? '',
      new RegExp(
        /ALTER PUBLICATION "pgcdc_pub" DROP TABLE "public"."b", "public"."c"/.source +
          /; or widen the selection \(--tables, --exclude-tables\)/.source,
      ),
    );
    const all = evaluate(
      input({ extraPublished: extra, publication: { ...input().publication, allTables: true } }),
    ).find((p) => p.code === 'publication-extra-tables');
    assert.match(all?.fix ?? '', /FOR ALL TABLES: give pgcdc a publication of its own/);
    assert.deepEqual(codes(input({ extraPublished: [] })), []);
  },
);
