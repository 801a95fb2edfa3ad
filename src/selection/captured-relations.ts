/**
 * The stream side of the table selection: which relations' changes become events. Decided once
 * per Relation message (by relation id), so the per-change cost is one set lookup in the
 * ChangeAssembler.
 *
 * - The signal table's changes always reach the ChangeAssembler's observer: they are signals and
 *   watermarks (snapshot/window-tracker.ts), never events.
 * - The heartbeat table's never become events (pipeline/heartbeat.ts).
 * - Any other relation's do when it was selected at start (by oid, so a rename keeps it) or
 *   matches the selection now: a partition by its own name or its root's, a table created after
 *   start by the patterns. Others are what the publication sends beyond the selection: dropped,
 *   with one info line per relation.
 */
import type { Logger } from '../core/log.ts';
import type { RelationMessage } from '../source/relations.ts';
import { displayName, type TableSelection } from './table-selection.ts';
import type { TableName } from './patterns.ts';

export class CapturedRelations {
  private readonly selection: TableSelection;
  private readonly selectedOids: ReadonlySet<number>;
  private readonly signalTable: TableName | undefined;
  private readonly heartbeatTable: TableName | undefined;
  private readonly log: Logger;
  /** Relation ids whose changes are dropped. */
  private readonly dropped = new Set<number>();

  constructor(
    selection: TableSelection,
    own: { signal: TableName | undefined; heartbeat: TableName | undefined },
    log: Logger,
  ) {
    this.selection = selection;
    this.selectedOids = new Set(selection.tables.map((t) => t.oid));
    this.signalTable = own.signal;
    this.heartbeatTable = own.heartbeat;
    this.log = log;
  }

  /** True when the changes of `relationId` are dropped (as of its last Relation message). */
  drops(relationId: number): boolean {
    return this.dropped.has(relationId);
  }

  /** A Relation message: `root` is the partitioned table it is reported under, if a partition. */
  relation(message: RelationMessage, root: TableName | undefined): void {
    const own = { schema: message.namespace, table: message.name };
    const reported = root ?? own;
    const same = (t: TableName | undefined): boolean =>
      t !== undefined && t.schema === reported.schema && t.table === reported.table;
    const heartbeat = same(this.heartbeatTable);
    const captured =
      same(this.signalTable) ||
      (!heartbeat && (this.selectedOids.has(message.relationId) || this.selection.captures(own, root)));
    if (captured) this.dropped.delete(message.relationId);
    else if (!this.dropped.has(message.relationId)) {
      this.dropped.add(message.relationId);
      if (!heartbeat)
        this.log.info(
          { table: displayName(own) },
          'the publication sends changes of a table outside the selection: they are dropped (pgcdc check says ' +
            'how to stop sending them)',
        );
    }
  }
}
