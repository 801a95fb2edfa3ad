/**
 * The window tracker's side of a lost-slot recovery's deletes (`onLostDeletes: emit`,
 * recovery-deletes.ts holds the candidates and why they are right): what a streamed change removes
 * from the candidates, and the deletes written when the window of a table's last chunk closes, at
 * its high watermark, right after the chunk's reads.
 */
import type { Logger } from '../core/log.ts';
import type { TableSerializer } from '../envelope/json.ts';
import { OP_TALLY } from '../envelope/change-sink.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { TableSchema } from '../source/relations.ts';
import type { WindowEvent } from './dblog-window.ts';
import type { RecoveryDeletes } from './recovery-deletes.ts';
import type { WindowOutput } from './window-contract.ts';

/** A streamed change of tracked table `key` (its keys as `event` tells them): those keys need no delete. */
export function streamedChange(
  deletes: RecoveryDeletes,
  key: string,
  table: TableSchema,
  event: WindowEvent,
  log: Logger,
): void {
  if (event.kind === 'change') deletes.drop(key, event.keys);
  else if (table.keyIndexes.length === 0)
    deletes.forget(key); // a keyless table: nothing can be matched (documented; the reader warns)
  else {
    // A change whose key cannot be told may name any candidate: no delete can be proven right.
    deletes.forget(key);
    log.warn(
      { table: key },
      'onLostDeletes emit: a streamed change of the table had no usable key, so its recovery emits no deletes',
    );
  }
}

/** Where the deletes of a table's last chunk go: the chunk's events' id head, position and time. */
export interface DeleteEmission {
  readonly out: WindowOutput;
  readonly serializer: TableSerializer;
  /** `schema.table`, as the candidates are kept. */
  readonly table: string;
  readonly idHead: Buffer;
  /** The ordinal of the first delete in the table's recovery (after every row read). */
  readonly firstOrdinal: number;
  readonly lsn: Lsn;
  readonly lsnText: string;
  readonly nowMs: number;
  /** The table's op tally base from `tallyBase` (-1: not counted). */
  readonly tallyBase: number;
  readonly log: Logger;
}

/** Writes a key-only delete for every candidate left of the table, which is forgotten; returns how many. */
export function emitRecoveryDeletes(deletes: RecoveryDeletes, at: DeleteEmission): number {
  const keys = deletes.take(at.table);
  const { out, serializer } = at;
  const tail = serializer.recoveryDeleteTail(at.lsn, at.lsnText, at.nowMs);
  const tally = at.tallyBase < 0 ? -1 : at.tallyBase + OP_TALLY.d;
  let deleted = 0;
  for (const key of keys) {
    out.writer.startEvent();
    serializer.writeKeyDelete(out.writer, Buffer.from(key, 'utf8'), at.idHead, at.firstOrdinal + deleted, tail);
    out.eventEnd(serializer.topicNumber, 0, tally);
    deleted++;
  }
  if (deleted > 0)
    at.log.info(
      { table: at.table, deletes: deleted },
      'onLost resnapshot: emitted deletes for keys the output held and the source no longer has',
    );
  return deleted;
}
