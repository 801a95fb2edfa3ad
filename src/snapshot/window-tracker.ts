/**
 * The stream side of incremental snapshots: open DBLog windows (snapshot/dblog-window.ts), the
 * watermarks and signals found in the stream, and the read events emitted when a window closes.
 *
 * Synchronous, called by the ChangeAssembler between and inside transactions (ChangeObserver) and
 * by the stream loop at keepalives; the reading side (snapshot/incremental.ts) registers windows
 * and hands them their chunk. Everything that changes the stored snapshot progress happens at a
 * transaction boundary, right before a `commit` of the delivery, so that progress is stored with
 * exactly the events it describes:
 * - a window closes at its high watermark: at the commit of the transaction that wrote it
 *   (signal-table and message methods), or (read-only) before the first transaction that commits
 *   at or after the LSN the read saw, at the end of one, or at a keepalive past it;
 * - execute-snapshot and stop-snapshot signals take effect at the commit of their transaction;
 *   requests from `pgcdc snapshot` at the next boundary.
 */
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn, TupleData } from '../protocol/messages.ts';
import type { IncrementalSnapshotState } from '../offsets/store.ts';
import type { TableSchema } from '../source/relations.ts';
import { readIdHead } from '../envelope/json.ts';
import { OP_TALLY } from '../envelope/change-sink.ts';
import type { CopyRow } from './copy-text.ts';
import type { TableName } from './initial-reader.ts';
import { ChunkWindow, type WindowEvent } from './dblog-window.ts';
import { keyText } from './keys.ts';
import { advanceTable, requestTables, stopTables, withRequest } from './resume-state.ts';
import { capturedOnly, parseSignal, parseWatermarkMessage, WATERMARK_MESSAGE_PREFIX, type Signal } from './signals.ts';
import { RecentTransactions } from './recent-transactions.ts';
import { emitRecoveryDeletes, streamedChange } from './recovery-delete-events.ts';
import type {
  ChangeObserver,
  ChunkRead,
  WindowHandle,
  WindowOutcome,
  WindowOutput,
  WindowSpec,
  WindowTrackerOptions,
} from './window-contract.ts';

/** Every type of the contract, so the tracker's users import it from one place. */
export type * from './window-contract.ts';

interface Tracked {
  readonly spec: WindowSpec;
  readonly window: ChunkWindow<CopyRow>;
  readonly key: string;
  state: 'waiting-low' | 'open' | 'closing';
  openedAt: number;
  read: (ChunkRead & { readonly ordinals: Map<CopyRow, number> }) | undefined;
  schemaChanged: boolean;
  resolve: (outcome: WindowOutcome) => void;
}

const nameOf = (t: TableName): string => `${t.schema}.${t.table}`;

export class WindowTracker implements ChangeObserver {
  private readonly out: WindowOutput;
  private readonly options: WindowTrackerOptions;
  private readonly recent = new RecentTransactions();
  private readonly byId = new Map<string, Tracked>();
  private readonly byTable = new Map<string, Tracked>();
  /** Relation id -> 'signal' | the window key (`schema.table`) it is reported under. */
  private readonly roles = new Map<number, string>();
  private readonly signalKey: string | undefined;
  /** Signals of the open transaction, applied at its commit. */
  private txSignals: Signal[] = [];
  /** `pgcdc snapshot` requests waiting for a boundary. */
  private requests: { id: string; tables: readonly TableName[] }[] = [];
  private inTx = false;
  /** The furthest position known to be fully streamed (commit end LSNs and idle keepalives). */
  private passed: Lsn = 0;

  constructor(out: WindowOutput, options: WindowTrackerOptions) {
    this.out = out;
    this.options = options;
    this.signalKey = options.signalTable ? nameOf(options.signalTable) : undefined;
  }

  get active(): boolean {
    return this.signalKey !== undefined || this.byTable.size > 0 || this.options.recoveryDeletes?.active === true;
  }

  /** A read-only window has its chunk and waits for the stream to pass the read's position. */
  get waitingForStream(): boolean {
    for (const tracked of this.byId.values()) if (tracked.read?.highLsn !== undefined) return true;
    return false;
  }

  get progress(): IncrementalSnapshotState | undefined {
    return this.out.currentResumeState.incremental;
  }

  /** Registers a window; resolved when it closes (or is cancelled). */
  register(spec: WindowSpec): WindowHandle {
    let resolve!: (outcome: WindowOutcome) => void;
    const closed = new Promise<WindowOutcome>((r) => (resolve = r));
    const key = nameOf(spec.table);
    const tracked: Tracked = {
      spec,
      key,
      // A keyless table's rows are told apart by their place in the chunk; any change of such a
      // table in the window is an unknown key, so its chunk is read again (see snapshot/dblog-window.ts).
      window: new ChunkWindow<CopyRow>(
        (row) => keyText(spec.schema, row) ?? `#${tracked.read?.ordinals.get(row) ?? -1}`,
      ),
      state: spec.opensAt === 'now' ? 'open' : 'waiting-low',
      openedAt: this.recent.position,
      read: undefined,
      schemaChanged: false,
      resolve,
    };
    this.byTable.get(key)?.resolve({ kind: 'cancelled' });
    this.byId.set(spec.id, tracked);
    this.byTable.set(key, tracked);
    return {
      closed,
      chunkRead: (read) => {
        if (tracked.read !== undefined || !this.byId.has(spec.id)) return;
        const ordinals = new Map<CopyRow, number>();
        read.rows.forEach((row, i) => ordinals.set(row, i));
        tracked.read = { ...read, ordinals };
        tracked.window.setChunk(read.rows);
        if (read.highLsn !== undefined) this.options.requestKeepalive();
      },
    };
  }

  /** A `pgcdc snapshot` request; it takes effect at the next transaction boundary. */
  request(id: string, tables: readonly TableName[]): void {
    if (this.progress?.requests.includes(id) || this.requests.some((r) => r.id === id)) return;
    this.requests.push({ id, tables });
  }

  /** Ends every window without emitting anything (the capture is stopping). */
  cancelAll(): void {
    for (const tracked of this.byId.values()) tracked.resolve({ kind: 'cancelled' });
    this.byId.clear();
    this.byTable.clear();
  }

  // ---- ChangeObserver -------------------------------------------------------------------

  begin(xid: number, finalLsn: Lsn): void {
    this.boundary(finalLsn);
    this.recent.begin(xid);
    this.inTx = true;
  }

  change(table: TableSchema, old: TupleData | null, row: TupleData | null): boolean {
    const key = this.roleOf(table);
    if (key === this.signalKey) {
      if (row !== null && old === null) this.signalRow(table, row);
      return true;
    }
    const deletes = this.options.recoveryDeletes;
    if (deletes?.tracks(key) === true)
      streamedChange(deletes, key, table, this.keysOf(table, old, row), this.options.log);
    const tracked = this.byTable.get(key);
    // An insert cannot touch a chunk whose read leaves out rows inserted since its snapshot.
    if (
      tracked === undefined ||
      tracked.state === 'waiting-low' ||
      (old === null && tracked.spec.insertsStreamed === true)
    )
      return false;
    tracked.window.observe(this.keysOf(table, old, row));
    return false;
  }

  truncate(table: TableSchema): void {
    this.options.recoveryDeletes?.truncated(this.roleOf(table));
    const tracked = this.byTable.get(this.roleOf(table));
    if (tracked !== undefined && tracked.state !== 'waiting-low') tracked.window.observe({ kind: 'truncate' });
  }

  message(prefix: string, content: Buffer): void {
    if (prefix === WATERMARK_MESSAGE_PREFIX) this.signal(parseWatermarkMessage(content));
  }

  committed(endLsn: Lsn, delivered: boolean): void {
    this.inTx = false;
    if (!delivered) {
      this.boundary(endLsn);
      return;
    }
    const signals = this.txSignals;
    this.txSignals = [];
    for (const signal of signals) this.apply(signal, formatLsn(endLsn));
    for (const tracked of [...this.byId.values()]) if (tracked.state === 'closing') this.close(tracked, endLsn, false);
    if (endLsn > this.passed) this.passed = endLsn;
    this.closeReadOnly(endLsn, false);
    // The assembler commits right after this: no commit of our own here (it would store the
    // transaction's events under the previous LSN).
    this.takeRequests(endLsn, false);
  }

  relationChanged(relationId: number): void {
    this.roles.delete(relationId);
    // The key cannot be told before the new schema is known: mark every window; `change` rechecks.
    for (const tracked of this.byId.values()) tracked.schemaChanged ||= tracked.state !== 'waiting-low';
  }

  /** A keepalive outside any transaction: everything before `walEnd` has been streamed. */
  keepalive(walEnd: Lsn): void {
    if (this.inTx) return;
    this.boundary(walEnd);
  }

  /** The loop is between transactions (a status tick): pending requests may take effect. */
  idle(): void {
    if (!this.inTx) this.boundary(0);
  }

  // ---- internals ------------------------------------------------------------------------

  private boundary(lsn: Lsn): void {
    if (lsn > this.passed) this.passed = lsn;
    this.closeReadOnly(this.passed, true);
    this.takeRequests(this.out.committedLsn, true);
  }

  private roleOf(table: TableSchema): string {
    let role = this.roles.get(table.relationId);
    if (role === undefined) {
      role = `${table.schema}.${table.table}`;
      this.roles.set(table.relationId, role);
    }
    return role;
  }

  private keysOf(table: TableSchema, old: TupleData | null, row: TupleData | null): WindowEvent {
    const keys: string[] = [];
    for (const tuple of [row, old]) {
      if (tuple === null) continue;
      // A key column sent as null is one the old key tuple did not carry (another replica identity).
      if (table.keyIndexes.some((i) => tuple[i] === null)) return { kind: 'unknown-key' };
      const text = keyText(table, tuple);
      if (text === undefined) return { kind: 'unknown-key' };
      keys.push(text);
    }
    return { kind: 'change', keys };
  }

  private signalRow(table: TableSchema, row: TupleData): void {
    const column = (name: string): string | null => {
      const index = table.columns.findIndex((c) => c.name === name);
      const value = index < 0 ? null : row[index];
      return typeof value === 'string' ? value : null;
    };
    const type = column('type');
    const id = column('id');
    if (type === null || id === null) {
      this.options.log.warn({ table: this.signalKey }, 'ignored a signal row without id or type');
      return;
    }
    this.signal(capturedOnly(parseSignal(type, column('data'), id), this.options.uncaptured));
  }

  private signal(signal: Signal): void {
    if (signal.kind === 'watermark') {
      const tracked = this.byId.get(signal.window);
      if (tracked === undefined) return; // a window of an earlier run, seen again after a restart
      if (signal.edge === 'low' && tracked.state === 'waiting-low') {
        tracked.state = 'open';
        tracked.openedAt = this.recent.position;
      } else if (signal.edge === 'high' && tracked.state === 'open') tracked.state = 'closing';
      return;
    }
    if (signal.kind === 'rejected') {
      this.options.log.warn({}, `ignored a signal: ${signal.reason}`);
      return;
    }
    this.txSignals.push(signal);
  }

  private apply(signal: Signal, lsn: string): void {
    const current = this.out.currentResumeState;
    if (signal.kind === 'execute-snapshot') {
      this.options.log.info(
        { tables: signal.tables.map(nameOf) },
        'execute-snapshot signal: incremental snapshot requested',
      );
      this.out.setResumeState({ ...current, incremental: requestTables(current.incremental, lsn, signal.tables) });
      this.options.onSnapshotsChanged();
    } else if (signal.kind === 'stop-snapshot') {
      this.options.log.info(
        { tables: signal.tables?.map(nameOf) ?? 'all' },
        'stop-snapshot signal: incremental snapshot stopped',
      );
      // Windows of stopped tables emit nothing when they close (see `close`).
      this.out.setResumeState({ ...current, incremental: stopTables(current.incremental, signal.tables) });
      this.options.onSnapshotsChanged();
    }
  }

  private takeRequests(lsn: Lsn, commit: boolean): void {
    if (this.requests.length === 0) return;
    const requests = this.requests;
    this.requests = [];
    let incremental = this.out.currentResumeState.incremental;
    for (const request of requests) {
      incremental = withRequest(requestTables(incremental, formatLsn(lsn), request.tables), request.id);
      this.options.log.info(
        { tables: request.tables.map(nameOf), request: request.id },
        'pgcdc snapshot: incremental snapshot requested',
      );
    }
    this.out.setResumeState({ ...this.out.currentResumeState, incremental });
    if (commit) this.out.commit(this.out.committedLsn);
    this.options.onSnapshotsChanged();
  }

  /** Closes read-only windows whose read the stream has now passed. */
  private closeReadOnly(passed: Lsn, commit: boolean): void {
    for (const tracked of [...this.byId.values()]) {
      const highLsn = tracked.read?.highLsn;
      if (highLsn !== undefined && passed >= highLsn) this.close(tracked, passed, commit);
    }
  }

  private close(tracked: Tracked, lsn: Lsn, commit: boolean): void {
    this.byId.delete(tracked.spec.id);
    if (this.byTable.get(tracked.key) === tracked) this.byTable.delete(tracked.key);
    const read = tracked.read;
    const entry = this.progress?.tables[tracked.spec.tableIndex];
    if (read === undefined || entry === undefined || entry.stopped === true || entry.cursor.done) {
      tracked.resolve({ kind: 'cancelled' });
      return;
    }
    if (tracked.schemaChanged) {
      tracked.resolve({
        kind: 'retry',
        reason: 'the table changed (DDL) while the chunk was read',
        schemaChanged: true,
      });
      return;
    }
    if (this.recent.anyBegunBefore(read.xip, tracked.openedAt)) {
      tracked.resolve({
        kind: 'retry',
        reason: 'a transaction streamed before the window was still running for the read',
        schemaChanged: false,
      });
      return;
    }
    const result = tracked.window.close();
    if (result.kind === 'retry') {
      tracked.resolve({ kind: 'retry', reason: result.reason, schemaChanged: false });
      return;
    }
    const progress = this.progress as IncrementalSnapshotState;
    const { serializer } = tracked.spec;
    const w = this.out.writer;
    const lsnText = formatLsn(lsn);
    const now = Date.now();
    const idHead = readIdHead(`${progress.id}:${tracked.spec.tableIndex}:`);
    const tail = serializer.readTail(entry.recovery ? 'recovery' : 'incremental', lsn, lsnText, now);
    const base = this.out.tallyBase?.(`${serializer.table.schema}.${serializer.table.table}`) ?? -1;
    const tally = base < 0 ? -1 : base + OP_TALLY.r;
    for (const row of result.survivors) {
      w.startEvent();
      serializer.writeRead(w, row, idHead, entry.read + (read.ordinals.get(row) ?? 0), tail);
      this.out.eventEnd(serializer.topicNumber, 0, tally);
    }
    // The table's last chunk: the recovery's deletes stand at this high watermark (recovery-deletes.ts).
    const deletes = this.options.recoveryDeletes;
    if (entry.recovery !== undefined && read.next.done && deletes?.tracks(tracked.key) === true)
      emitRecoveryDeletes(deletes, {
        out: this.out,
        serializer,
        table: tracked.key,
        idHead,
        firstOrdinal: entry.read + read.rows.length,
        lsn,
        lsnText,
        nowMs: now,
        tallyBase: base,
        log: this.options.log,
      });
    const next = advanceTable(progress, tracked.spec.tableIndex, read.next, read.rows.length, result.survivors.length);
    this.out.setResumeState({ ...this.out.currentResumeState, incremental: next });
    if (commit) this.out.commit(this.out.committedLsn);
    tracked.resolve({ kind: 'emitted', emitted: result.survivors.length, dropped: result.dropped });
  }
}
