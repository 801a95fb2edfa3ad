import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPlan, formatPlan, type SetupOptions } from '../../../src/setup/plan.ts';
import { PLATFORMS } from '../../../src/setup/platforms.ts';

const base: SetupOptions = {
  platform: 'generic', user: 'cap"user', userPassword: "s3cr'et", database: 'shop', tables: [{ schema: 'public', table: 'orders' }], schemas: ['public'],
  publication: 'pgcdc_pub', slot: 'pgcdc_slot', signalSchema: 'pgcdc', heartbeatSchema: undefined, replicaIdentityFull: true, major: 12,
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
