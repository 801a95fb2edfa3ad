/**
 * The serializer's cost per shaping configuration, in process (no PostgreSQL, no sink, no I/O):
 * the same 1,000,000 narrow insert events `(id bigint, v int, t text)` written into batches by the
 * table's serializer, unshaped, flat, and with rules (hash of v, t cut to 4 characters, a routed
 * topic). On a shared machine this isolates what shaping adds from the noise of the whole pipeline
 * that bench/stream.ts --shaping measures.
 *
 *   npx tsx bench/shaping.ts [--rows 1000000]
 */
import { parseArgs } from 'node:util';
import { TableSerializer, transactionContext } from '../src/envelope/json.ts';
import { loadShaping } from '../src/envelope/shaping.ts';
import type { TopicNaming } from '../src/envelope/topics.ts';
import { parseConfig, type ConfigInput } from '../src/config.ts';
import { TopicRegistry } from '../src/sinks/batch.ts';
import { EventBatchBuilder } from '../src/sinks/batch-builder.ts';
import { parseTablePattern, tableMatches } from '../src/selection/patterns.ts';
import { DEFAULT_VALUE_OPTIONS, isPlainStringEncoder, jsonEncoderFor } from '../src/source/values.ts';
import type { TableSchema } from '../src/source/relations.ts';
import { wholeNumber } from './flags.ts';

const { values: flags } = parseArgs({ options: { rows: { type: 'string', default: '1000000' } } });
const ROWS = wholeNumber(flags.rows, '--rows');
const BATCH = 50_000;

const table: TableSchema = {
  relationId: 1,
  schema: 'public',
  table: 'bench',
  replicaIdentity: 'd',
  columns: (
    [
      ['id', 20],
      ['v', 23],
      ['t', 25],
    ] as const
  ).map(([name, oid]) => {
    const encode = jsonEncoderFor(oid, () => undefined, DEFAULT_VALUE_OPTIONS);
    return { name, typeOid: oid, typeMod: -1, encode, plainString: isPlainStringEncoder(encode) };
  }),
  keyIndexes: [0],
};

const CONFIGS: Record<string, ConfigInput> = {
  unshaped: {},
  flat: { envelope: { type: 'flat' } },
  rules: {
    shaping: {
      salt: { env: 'BENCH_SALT' },
      rules: [{ tables: ['public.bench'], mask: { v: 'hash' }, truncate: { t: 4 }, topic: '{prefix}.routed.{table}' }],
    },
  },
};

function naming(input: ConfigInput): TopicNaming {
  const config = parseConfig(input);
  const compile = (text: string) => {
    const pattern = parseTablePattern(text);
    return (schema: string, name: string) => tableMatches(pattern, schema, name);
  };
  return {
    prefix: 'bench',
    database: 'bench',
    naming: 'prefix',
    envelope: { format: 'json', unavailableValue: 'x', type: config.envelope.type, deletes: config.envelope.deletes },
    shaping: loadShaping(config.shaping, compile, { BENCH_SALT: 'bench-salt' }),
  };
}

const rows = Array.from({ length: 1000 }, (_, i) => [String(i + 1), String((i * 7919) % 1000003), `${i}abcdefg`]);

function run(name: string): number {
  const topics = new TopicRegistry();
  const s = new TableSerializer(table, naming(CONFIGS[name] ?? {}), topics);
  const builder = new EventBatchBuilder(topics, 8 << 20, BATCH);
  const started = performance.now();
  let bytes = 0;
  for (let first = 0; first < ROWS; first += 1000) {
    const tx = transactionContext(first, `0/${first.toString(16)}`, 1763719200123);
    const inTx = s.inTransaction(tx);
    for (let i = 0; i < 1000 && first + i < ROWS; i++) {
      const row = rows[i] as string[];
      inTx.count++;
      builder.startEvent();
      s.write(builder, 'c', row, null, row, tx, inTx, 1000 + first + i, i + 1, 1763719200125);
      builder.endEvent(s.topicNumber);
      if (builder.count === BATCH) bytes += builder.take(BATCH).data.length;
    }
  }
  bytes += builder.take(builder.count).data.length;
  const ms = performance.now() - started;
  console.log(
    `${name.padEnd(9)} ${Math.round((ROWS / ms) * 1000).toLocaleString('en-US')} events/s, ` +
      `${(bytes / ROWS).toFixed(0)} bytes/event`,
  );
  return ms;
}

// A warm-up pass each, then the measured passes.
for (const name of Object.keys(CONFIGS)) run(name);
console.log('measured:');
const base = run('unshaped');
for (const name of ['flat', 'rules']) console.log(`  ${name}: ${(base / run(name)).toFixed(2)} x the unshaped rate`);
