/** The shaping keys of the config: defaults, and one path-named line per bad value. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config.ts';
import { CdcError } from '../../../src/core/errors.ts';

function refused(input: unknown, expected: string): void {
  assert.throws(
    () => parseConfig(input, 'pgcdc.yaml'),
    (error: unknown) => {
      assert.ok(error instanceof CdcError);
      assert.equal(error.code, 'CONFIG_INVALID');
      assert.equal(error.message, `pgcdc.yaml: ${expected}`);
      return true;
    },
  );
}

test('defaults: the debezium envelope and no rules', () => {
  const config = parseConfig({});
  assert.equal(config.envelope.type, 'debezium');
  assert.equal(config.envelope.deletes, undefined);
  assert.deepEqual(config.shaping, { rules: [] });
});

test('a full rule parses with its defaults', () => {
  const config = parseConfig({
    envelope: { type: 'flat', deletes: 'tombstone' },
    shaping: {
      salt: { env: 'PGCDC_SALT' },
      rules: [
        {
          tables: ['public.users', 'tenant_*.orders'],
          exclude: ['password_hash'],
          mask: { email: 'hash', phone: { fixed: '***' } },
          truncate: { bio: 200 },
          drop: ['d'],
          topic: '{prefix}.all.{table}',
        },
        { tables: ['public.audit'], include: ['id', 'at'] },
      ],
    },
  });
  assert.equal(config.envelope.type, 'flat');
  assert.deepEqual(config.shaping.rules[1], {
    tables: ['public.audit'],
    include: ['id', 'at'],
    exclude: [],
    mask: {},
    truncate: {},
    drop: [],
  });
});

test('bad values name their key in one line', () => {
  const rule = (extra: Record<string, unknown>) => ({ shaping: { rules: [{ tables: ['public.t'], ...extra }] } });
  refused({ envelope: { type: 'avro' } }, 'envelope.type: Invalid option: expected one of "debezium"|"flat"');
  refused(
    { envelope: { deletes: 'tombstone' } },
    'envelope.deletes: applies to envelope.type: flat only (the debezium envelope writes deletes with before and op d)',
  );
  refused(rule({ mask: { email: 'md5' } }), 'shaping.rules.0.mask.email: must be hash or {fixed: "<text>"}');
  refused(
    rule({ mask: { email: 'hash' } }),
    'shaping.rules.0.mask.email: hash needs a salt: set shaping.salt.file or shaping.salt.env',
  );
  refused(
    { shaping: { salt: { file: 'a', env: 'B' }, rules: [] } },
    'shaping.salt: give exactly one of file or env (the salt itself never goes in the YAML file)',
  );
  refused({ shaping: { salt: { value: 'x' } } }, 'shaping.salt: Unrecognized key: "value"');
  refused(rule({ truncate: { bio: 0 } }), 'shaping.rules.0.truncate.bio: Too small: expected number to be >=1');
  refused(rule({ drop: ['r'] }), 'shaping.rules.0.drop.0: Invalid option: expected one of "c"|"u"|"d"|"t"');
  refused(
    rule({ topic: '{prefix}.{tenant}' }),
    'shaping.rules.0.topic: unknown variable {tenant}: a topic template may use ' +
      '{prefix}, {database}, {schema}, {table}',
  );
  refused(
    rule({ topic: '{prefix.x' }),
    'shaping.rules.0.topic: a { or } without its pair: variables are written {schema}',
  );
  refused(
    { shaping: { rules: [{ tables: ['a.b.c'] }] } },
    'shaping.rules.0.tables.0: "a.b.c" is not a table pattern: write schema.table or schema.*',
  );
  refused({ shaping: { rules: [{ tables: [] }] } }, 'shaping.rules.0.tables: must name at least one table or pattern');
  refused(
    { shaping: { salt: { env: 'S' }, rules: [{ tables: ['t'], mask: { bio: 'hash' }, truncate: { bio: 3 } }] } },
    'shaping.rules.0.truncate.bio: bio is masked: a masked value is replaced whole, leave it out of truncate',
  );
  refused(rule({ colums: [] }), 'shaping.rules.0: Unrecognized key: "colums"');
});
