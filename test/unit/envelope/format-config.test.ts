/** The envelope options in the config: `envelope.format` (`--format`), `toast.placeholder`, `values.style`. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config.ts';
import { flagsToConfig } from '../../../src/cli/run-command.ts';

test('defaults: json, pgcdc values, pgcdc placeholder', () => {
  const config = parseConfig({});
  assert.equal(config.envelope.format, 'json');
  assert.equal(config.values.style, 'pgcdc');
  assert.equal(config.values.json, 'value');
  assert.equal(config.toast.placeholder, '__pgcdc_unavailable_value');
});

test('--format json-with-schema sets envelope.format and writes json as strings', () => {
  const config = parseConfig(flagsToConfig({ format: 'json-with-schema' }));
  assert.equal(config.envelope.format, 'json-with-schema');
  assert.equal(config.values.json, 'string', 'no Connect schema describes an arbitrary JSON document');
  assert.equal(parseConfig({ values: { json: 'value' } }).values.json, 'value', 'json keeps the document');
});

test('toast.placeholder and values.style come from the file; bad values name the key', () => {
  const config = parseConfig({
    toast: { placeholder: '__debezium_unavailable_value' },
    values: { style: 'debezium' },
    envelope: { format: 'json-with-schema' },
  });
  assert.equal(config.toast.placeholder, '__debezium_unavailable_value');
  assert.equal(config.values.style, 'debezium');
  assert.throws(() => parseConfig({ envelope: { format: 'avro' } }, 'pgcdc.yaml'), /pgcdc\.yaml: envelope\.format/);
  assert.throws(() => parseConfig({ toast: { placeholder: '' } }), /toast\.placeholder/);
  assert.throws(() => parseConfig({ values: { style: 'other' } }), /values\.style/);
});
