import '../../harness/tmp.ts'; // temporary files go under a per-process root, removed at exit
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mergeLayers, parseConfig, readConfigFile } from '../../../src/config.ts';
import { parseTableName } from '../../../src/selection/table-name.ts';
import { loadConfig } from '../../../src/cli/run-command.ts';
import { describeEndpoint, resolveEndpoint } from '../../../src/postgres/connect.ts';
import { CdcError } from '../../../src/core/errors.ts';

function configError(fn: () => unknown): CdcError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof CdcError);
    return error;
  }
  assert.fail('expected an error');
}

test('defaults fill every key', () => {
  const config = parseConfig({});
  assert.equal(config.slot, 'pgcdc_slot');
  assert.equal(config.sink.kind, 'jsonl');
  assert.equal(config.batch.maxEvents, 50_000);
  assert.deepEqual(config.tables, []);
});

test('errors name the dotted path of the bad key', () => {
  assert.match(
    configError(() => parseConfig({ batch: { maxEvents: 0 } }, 'f.yaml')).message,
    /^f\.yaml: batch\.maxEvents: /,
  );
  assert.match(configError(() => parseConfig({ sink: { kind: 'pigeon' } })).message, /sink\.kind/);
  assert.match(configError(() => parseConfig({ slott: 'x' })).message, /slott/);
  assert.match(configError(() => parseConfig({ slot: 'bad name' })).message, /slot: must be a plain identifier/);
});

test('later layers win and undefined never overrides', () => {
  const merged = mergeLayers({ slot: 'a', sink: { kind: 'jsonl', out: 'x' } }, { slot: undefined, sink: { out: 'y' } });
  assert.deepEqual(merged, { slot: 'a', sink: { kind: 'jsonl', out: 'y' } });
});

test('a YAML file is read and flags override it', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-cfg-'));
  const file = path.join(dir, 'pgcdc.yaml');
  await writeFile(file, 'slot: from_file\npublication: file_pub\ntables: [public.a]\nsink:\n  out: ./file-out\n');
  const config = await loadConfig({ config: file, slot: 'from_flag', tables: 'public.b, s.c' });
  assert.equal(config.slot, 'from_flag');
  assert.equal(config.publication, 'file_pub');
  assert.deepEqual(config.tables, ['public.b', 's.c']);
  assert.equal(config.sink.kind === 'jsonl' ? config.sink.out : undefined, './file-out');
  await writeFile(file, 'slot: [unclosed\n');
  await assert.rejects(readConfigFile(file), /not valid YAML/);
  await assert.rejects(readConfigFile(path.join(dir, 'missing.yaml')), /cannot read config file/);
});

test('the connection comes from PG* variables, the URL and fields, in that order of precedence', () => {
  const env = {
    PGHOST: 'envhost',
    PGPORT: '6543',
    PGUSER: 'envuser',
    PGPASSWORD: 'canary-secret',
    PGDATABASE: 'envdb',
  };
  const fromEnv = resolveEndpoint(parseConfig({}).source, env);
  assert.deepEqual(
    [fromEnv.host, fromEnv.port, fromEnv.user, fromEnv.database, fromEnv.password],
    ['envhost', 6543, 'envuser', 'envdb', 'canary-secret'],
  );
  const fromUrl = resolveEndpoint(
    parseConfig({ source: { url: 'postgres://u:p%40ss@h:5433/db?sslmode=require' } }).source,
    env,
  );
  assert.deepEqual(
    [fromUrl.host, fromUrl.port, fromUrl.user, fromUrl.password, fromUrl.sslmode],
    ['h', 5433, 'u', 'p@ss', 'require'],
  );
  const fields = resolveEndpoint(parseConfig({ source: { url: 'postgres://u@h/db', host: 'other' } }).source, env);
  assert.equal(fields.host, 'other');
  assert.equal(describeEndpoint(fromUrl), 'u@h:5433/db');
  assert.doesNotMatch(describeEndpoint(fromEnv), /canary/);
  const bad = configError(() =>
    resolveEndpoint(parseConfig({ source: { url: 'postgres://u:hunter2@[x' } }).source, {}),
  );
  assert.doesNotMatch(bad.message, /hunter2/);
  assert.match(
    configError(() => resolveEndpoint(parseConfig({ source: { url: 'mysql://h/db' } }).source, {})).message,
    /scheme/,
  );
  assert.match(configError(() => resolveEndpoint(parseConfig({}).source, { PGPORT: 'abc' })).message, /PGPORT/);
});

test('table names: schema.table, bare names in public, quoted parts', () => {
  assert.deepEqual(parseTableName('public.orders'), { schema: 'public', table: 'orders' });
  assert.deepEqual(parseTableName('orders'), { schema: 'public', table: 'orders' });
  assert.deepEqual(parseTableName('"my.schema"."Odd""Name"'), { schema: 'my.schema', table: 'Odd"Name' });
  assert.throws(() => parseTableName('a.b.c'), /schema\.table/);
  assert.throws(() => parseTableName('.x'), /schema\.table/);
});

test(
  'a range error names what the user typed: ' + 'the flag when it came from a flag, the key path when from the file',
  async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-cfg-'));
    const file = path.join(dir, 'pgcdc.yaml');
    await writeFile(file, 'batch:\n  maxEvents: 5000\nsnapshot:\n  parallelism: 100\n');
    const fromFile = await loadConfig({ config: file }).then(
      () => assert.fail('accepted'),
      (e: unknown) => e,
    );
    assert.ok(fromFile instanceof CdcError);
    assert.match(fromFile.message, /^.*pgcdc\.yaml: snapshot\.parallelism: Too big/);
    assert.match(fromFile.hint ?? '', /fix that key/);
    await writeFile(file, 'batch:\n  maxEvents: 5000\n');
    for (const flags of [{ config: file, batchSize: '2000000' }, { batchSize: '2000000' }]) {
      const fromFlag = await loadConfig(flags).then(
        () => assert.fail('accepted'),
        (e: unknown) => e,
      );
      assert.ok(fromFlag instanceof CdcError);
      assert.match(fromFlag.message, /^--batch-size: Too big: expected number to be <=1000000$/);
      assert.doesNotMatch(fromFlag.message, /maxEvents/);
      assert.match(fromFlag.hint ?? '', /fix that flag/);
    }
    const parallel = await loadConfig({ config: file, snapshotParallelism: '65' }).then(
      () => assert.fail('accepted'),
      (e: unknown) => e,
    );
    assert.ok(parallel instanceof CdcError);
    assert.match(parallel.message, /^--snapshot-parallelism: Too big/);
  },
);
