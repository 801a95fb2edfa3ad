/**
 * `onLostDeletes: emit` (docs/recovery.md#lost-slots): at the start of a run with a lost-slot
 * recovery pending, the keys the sink holds for each recovered table, read back from its output up to
 * the durable length the stored position names, with verify's reader (verify/jsonl-reader.ts). They
 * are the recovery's delete candidates (snapshot/recovery-deletes.ts): the keys among them the
 * source no longer has are emitted as deletes when the table's re-read ends.
 *
 * Memory: every key of every pending recovered table is held for the recovery (a Set of key texts,
 * about 100 bytes a key).
 */
import { CdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Config } from '../config.ts';
import { topicName, type TopicNaming } from '../envelope/topics.ts';
import type { ResumeState } from '../offsets/store.ts';
import type { Sink, SinkPosition } from '../sinks/contract.ts';
import { RecoveryDeletes } from '../snapshot/recovery-deletes.ts';
import { isPending } from '../snapshot/resume-state.ts';
import { JsonlSinkReader } from '../verify/jsonl-reader.ts';
import { KeyedState, shownKey } from '../verify/sink-state.ts';

/** Every position: the whole durable output is read. */
const ALL: number = Number.MAX_SAFE_INTEGER;

/** The tables of `progress` whose recovery is still to be read. */
export function pendingRecoveryTables(progress: ResumeState): { schema: string; table: string }[] {
  return (progress.incremental?.tables ?? [])
    .filter((t) => t.recovery !== undefined && isPending(t))
    .map((t) => ({ schema: t.schema, table: t.table }));
}

/** The durable length of each topic's file in a JSONL sink position (`{ files: { topic: bytes } }`). */
export function durableFiles(position: SinkPosition | undefined): Map<string, number> {
  const files = position?.files;
  const out = new Map<string, number>();
  if (files === null || typeof files !== 'object') return out;
  for (const [topic, bytes] of Object.entries(files as Record<string, unknown>))
    if (typeof bytes === 'number') out.set(topic, bytes);
  return out;
}

/** The delete candidates of this run, or undefined when no deletes are to be emitted. */
export async function loadRecoveryDeletes(input: {
  readonly config: Config;
  readonly sink: Sink;
  readonly position: SinkPosition | undefined;
  readonly progress: ResumeState;
  readonly naming: TopicNaming;
  readonly log: Logger;
}): Promise<RecoveryDeletes | undefined> {
  const { config, sink, naming, log } = input;
  if (config.onLostDeletes !== 'emit') return undefined;
  const tables = pendingRecoveryTables(input.progress);
  if (tables.length === 0) return undefined;
  const eventFile = sink.eventFile?.bind(sink);
  if (eventFile === undefined)
    throw new CdcError('CONFIG_INVALID', `onLostDeletes emit cannot read the ${sink.kind} sink's keys back`, {
      hint: 'use onLostDeletes: keep (pgcdc verify lists the keys deleted in the gap)',
    });
  const reader = new JsonlSinkReader({ dir: '', durable: durableFiles(input.position), fileName: eventFile });
  const placeholderJson = Buffer.from(JSON.stringify(config.toast.placeholder), 'utf8');
  const keys = new Map<string, string[]>();
  for (const table of tables) {
    const name = `${table.schema}.${table.table}`;
    const state = new KeyedState();
    const replay = {
      name,
      topic: topicName(naming, table),
      format: { withSchema: false, flat: false },
      placeholderJson,
    };
    const outcome = await reader.replayTable(replay, ALL, state);
    if (outcome.kind === 'replayed' && outcome.damage !== undefined)
      throw new CdcError('SINK_FAILED', `onLostDeletes emit cannot read ${name}'s keys back: ${outcome.damage}`);
    const held = [...state.remaining()].map(shownKey);
    keys.set(name, held);
    log.info(
      { table: name, keys: held.length },
      'onLostDeletes emit: keys the output holds, matched against the source during the recovery',
    );
  }
  return new RecoveryDeletes(keys);
}
