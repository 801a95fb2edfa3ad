import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config.ts';
import { parseTableName } from '../../../src/selection/table-name.ts';
import {
  parseCsv,
  parseTablePattern,
  patternsFromCsv,
  qualifiedName,
  selectionMatcher,
  selectTables,
  splitTableList,
} from '../../../src/selection/patterns.ts';
import { capturedOnly } from '../../../src/snapshot/signals.ts';

const catalog = [
  { schema: 'public', table: 'orders', isPartition: false },
  { schema: 'public', table: 'order_items', isPartition: false },
  { schema: 'public', table: 'tmp_x', isPartition: false },
  { schema: 'sales', table: 'm', isPartition: false },
  { schema: 'sales', table: 'm_2025', isPartition: true },
  { schema: 'sales', table: 'Leads', isPartition: false },
  { schema: 'my.schema', table: 'a,b', isPartition: false },
];
const names = (list: readonly { schema: string; table: string }[]): string[] =>
  list.map((t) => `${t.schema}.${t.table}`);

test('wildcards, exact names, bare names and exclusions', () => {
  const include = ['public.order*', 'sales.*', 'tmp_x'].map(parseTablePattern);
  const result = selectTables(catalog, include, [parseTablePattern('public.tmp_*')]);
  assert.deepEqual(names(result.tables), ['public.order_items', 'public.orders', 'sales.Leads', 'sales.m']);
  assert.deepEqual(result.unmatched, []);
});

test('a glob skips partitions; an exact name selects one; unmatched entries are reported', () => {
  assert.deepEqual(names(selectTables(catalog, [parseTablePattern('sales.m*')], []).tables), ['sales.m']);
  assert.deepEqual(names(selectTables(catalog, [parseTablePattern('sales.m_2025')], []).tables), ['sales.m_2025']);
  assert.deepEqual(
    selectTables(catalog, [parseTablePattern('sales.leads'), parseTablePattern('nope.*')], []).unmatched,
    ['sales.leads', 'nope.*'],
  );
});

test('quoted parts are exact: dots, commas and * inside quotes', () => {
  assert.deepEqual(splitTableList('"my.schema"."a,b", public.orders ,'), ['"my.schema"."a,b"', 'public.orders']);
  assert.deepEqual(names(selectTables(catalog, [parseTablePattern('"my.schema"."a,b"')], []).tables), [
    'my.schema.a,b',
  ]);
  assert.deepEqual(parseTablePattern('"x*"."y"').table, { exact: 'y' });
  assert.deepEqual(parseTablePattern('"x*".y').schema, { exact: 'x*' });
  for (const bad of ['a.b.c', '.a', 'a.', '"open.a'])
    assert.throws(() => parseTablePattern(bad), /not of the form schema\.table/);
});

test('CSV: quotes, escaped quotes, commas in names, CRLF, BOM, blank lines', () => {
  assert.deepEqual(parseCsv('\uFEFFpublic,orders\r\n\r\n"my.schema","a,b"\n"we""ird", t \n'), [
    ['public', 'orders'],
    ['my.schema', 'a,b'],
    ['we"ird', 't'],
  ]);
  assert.deepEqual(parseCsv('"multi\nline",x'), [['multi\nline', 'x']]);
  assert.throws(() => parseCsv('"open,x'), /not closed/);
});

test('tables file rows: schema,table exact, * for a whole schema, one-field rows like --tables', () => {
  const patterns = patternsFromCsv('public,orders\nsales,*\n"my.schema","a,b"\npublic.tmp_*\n', 't.csv');
  assert.deepEqual(names(selectTables(catalog, patterns, []).tables), [
    'my.schema.a,b',
    'public.orders',
    'public.tmp_x',
    'sales.Leads',
    'sales.m',
  ]);
  assert.throws(() => patternsFromCsv('a,b,c', 't.csv'), /t\.csv row 1: expected schema,table/);
});

test('qualifiedName round-trips through parseTableName', () => {
  for (const t of [
    { schema: 'my.schema', table: 'a"b' },
    { schema: 'public', table: 'Orders' },
  ])
    assert.deepEqual(parseTableName(qualifiedName(t)), t);
});

test('config accepts the selection keys', () => {
  const config = parseConfig({
    tables: ['sales.*'],
    excludeTables: ['sales.tmp_*'],
    tablesFile: 't.csv',
    signalTable: 'pgcdc.pgcdc_signal',
  });
  assert.deepEqual([config.tables, config.excludeTables, config.tablesFile], [['sales.*'], ['sales.tmp_*'], 't.csv']);
});

test(
  'the selection as a predicate over stream relations: partitions by their root, exclusions of the root, no ' +
    'include = all but excluded',
  () => {
    const t = (text: string): { schema: string; table: string } => parseTableName(text);
    const captures = selectionMatcher(['public.order*', 'sales.m', 'sales.m_2024'].map(parseTablePattern), [
      parseTablePattern('public.order_tmp'),
    ]);
    assert.equal(captures(t('public.orders')), true);
    assert.equal(captures(t('public.order_tmp')), false, 'excluded');
    assert.equal(captures(t('public.customers')), false, 'not selected');
    assert.equal(captures(t('sales.m_2025'), t('sales.m')), true, 'a partition by its selected root');
    assert.equal(captures(t('sales.m_2024'), t('sales.other')), true, 'a partition named exactly');
    assert.equal(
      captures(t('public.order_p1'), t('public.x')),
      false,
      'a wildcard never selects a partition by its own name',
    );
    const all = selectionMatcher([], [parseTablePattern('sales.*')]);
    assert.equal(all(t('public.anything')), true);
    assert.equal(all(t('sales.m_2025'), t('sales.m')), false, 'excluded with its root');
    assert.equal(all(t('other.p1'), t('sales.m')), false);
  },
);

test(
  'an execute-snapshot signal naming an uncaptured table ' + 'becomes a rejected one naming it and the captured tables',
  () => {
    const signal = { kind: 'execute-snapshot' as const, tables: [parseTableName('public.typo')] };
    const uncaptured = (): { names: string; captured: string } => ({
      names: 'public.typo',
      captured: 'public.a, public.b',
    });
    const rejected = capturedOnly(signal, uncaptured);
    assert.equal(rejected.kind, 'rejected');
    assert.match(
      rejected.kind === 'rejected' ? rejected.reason : '',
      /public\.typo, which this capture does not capture \(it captures public\.a, public\.b\)/,
    );
    assert.equal(
      capturedOnly(signal, () => undefined),
      signal,
    );
    assert.equal(capturedOnly({ kind: 'stop-snapshot', tables: undefined }, uncaptured).kind, 'stop-snapshot');
  },
);
