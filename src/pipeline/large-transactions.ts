/**
 * Protocol v2 streaming of large in-progress transactions (PostgreSQL 14+, config `streaming: true`).
 *
 * Once a transaction's changes exceed the server's logical_decoding_work_mem, PostgreSQL sends them
 * before the transaction ends, in chunks between Stream Start and Stream Stop, every message carrying
 * the xid of the (sub)transaction that made it. Non-streamed transactions interleave with the chunks.
 * The transaction ends with Stream Commit (deliver it) or Stream Abort (forget it, or only one
 * aborted subtransaction of it).
 *
 * Contract:
 * - In-progress chunks go to disk as raw message bytes (spill-file.ts), one file per top-level xid,
 *   so memory stays bounded however big the transaction is or however many are open.
 * - At Stream Commit the file is replayed through the normal path as one transaction: Begin with the
 *   commit LSN, commit time and xid of the Stream Commit, the changes in order, then Commit with its
 *   end LSN. Event ids (`<commit_lsn>:<ordinal>`), transaction metadata and the acknowledgement rule
 *   are therefore exactly those of a transaction that was not streamed. The replay reads the file a
 *   chunk at a time and waits whenever Delivery is above its high-water mark. The caller must hold
 *   every later frame until the replay settles (commit order).
 * - Relation and Type messages inside a stream are spilled with the changes and applied during the
 *   replay, in order. Applying them on arrival would be wrong: a DDL inside the streamed transaction
 *   would change how interleaved, earlier-committing transactions decode. PostgreSQL sends a
 *   relation's schema again after any Stream Abort of the transaction, so a Relation message
 *   discarded with an aborted subtransaction is never missing from the replay.
 * - While any streamed transaction is open, `open` is true: the capture loop counts that as "in
 *   flight" and does not confirm keepalive positions, so the acknowledged LSN stays before the
 *   open transaction's first change. (Commits of interleaved transactions still move it, which is
 *   safe: the server re-sends every transaction that commits after confirmed_flush_lsn whole, from
 *   the slot's restart_lsn, which it keeps before the oldest open transaction. Keeping keepalive
 *   confirmation back as well lets the server stream the transaction again right away after a
 *   restart: it does not stream anything it reads before confirmed_flush_lsn, it buffers it.)
 * - Spill files never outlive the process's interest in them: removed after commit, abort, stop,
 *   and, for files left by a crash, when the next run starts (the server sends those transactions
 *   again from their start).
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { CdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn, PgoutputMessage } from '../protocol/messages.ts';
import {
  carriesStreamXid,
  isStreamControl,
  peekMessageType,
  peekStreamXid,
  PgoutputDecoder,
} from '../protocol/pgoutput.ts';
import type { RelationMessage } from '../source/relations.ts';
import { readSpill, SpillFile, WRITE_BUFFER } from './spill-file.ts';

/** pgoutput's streaming protocol appeared in PostgreSQL 14. */
export const STREAMING_MIN_MAJOR = 14;

const SPILL_NAME = /^\d+\.pgoutput$/;

/** Refuses `streaming: true` on a server without protocol v2 streaming. */
export function checkStreamingSupported(streaming: boolean, major: number, server: string): void {
  if (!streaming || major >= STREAMING_MIN_MAJOR) return;
  throw new CdcError(
    'CONFIG_INVALID',
    `streaming needs PostgreSQL ${STREAMING_MIN_MAJOR} or newer, and ${server} runs PostgreSQL ${major}`,
    {
      hint:
        'run without --streaming (streaming: false): large transactions are then delivered at their ' +
        'commit, still with bounded memory',
    },
  );
}

/** The spill directory of a capture: next to its offsets file, so it is as private as that file. */
export function spillDirectory(offsetsPath: string): string {
  return `${offsetsPath}.spill`;
}

/** Where a replay sends what it reads: the capture loop's normal path. */
export interface ReplayTarget {
  /** Handles one decoded message (ChangeAssembler.handle): Begin, changes, Commit. */
  handle(message: PgoutputMessage, lsn: Lsn): void;
  /** Applies a Relation message with the same catalog lookups as a live one. */
  applyRelation(message: RelationMessage): Promise<void>;
  /** True once the capture is stopping or has failed: a replay then ends without its Commit. */
  stopped(): boolean;
}

export interface StreamedTransactionsOptions {
  /** Spill directory; created if missing, and stale spill files in it are deleted. */
  readonly dir: string;
  /** The live stream's decoder (protocol 2): it alone knows whether a stream block is open. */
  readonly decoder: PgoutputDecoder;
  readonly target: ReplayTarget;
  readonly log: Logger;
}

/** Counters for logs and tests. */
export interface StreamingStats {
  chunks: number;
  committed: number;
  aborted: number;
  subtransactionsAborted: number;
}

export class StreamedTransactions {
  private readonly dir: string;
  private readonly decoder: PgoutputDecoder;
  private readonly target: ReplayTarget;
  private readonly log: Logger;
  /** Open streamed transactions by top-level xid. */
  private readonly files = new Map<number, SpillFile>();
  /** The file of the stream block being received. */
  private current: SpillFile | undefined;
  /** One write buffer for every spill file: a stream block is flushed at its Stream Stop. */
  private readonly writeBuffer = Buffer.allocUnsafe(WRITE_BUFFER);
  private high = false;
  private waiters: (() => void)[] = [];
  private closed = false;
  readonly stats: StreamingStats = { chunks: 0, committed: 0, aborted: 0, subtransactionsAborted: 0 };

  constructor(options: StreamedTransactionsOptions) {
    this.dir = options.dir;
    this.decoder = options.decoder;
    this.target = options.target;
    this.log = options.log;
    const stale = removeSpillFiles(this.dir);
    if (stale > 0)
      this.log.info(
        { dir: this.dir, files: stale },
        'deleted spill files of streamed transactions left by an earlier run (the server sends them again)',
      );
  }

  /** A streamed transaction is open (received in part, not yet committed or aborted, or replaying). */
  get open(): boolean {
    return this.files.size > 0;
  }

  /**
   * Offers one pgoutput message of the live stream. Returns false when it is not a streaming
   * message (the caller handles it as usual), true when it was taken, or a promise when it was a
   * Stream Commit: the caller must hold every later frame until it settles.
   */
  take(data: Buffer, walStart: Lsn): boolean | Promise<void> {
    const type = peekMessageType(data);
    if (this.decoder.inStreamBlock && carriesStreamXid(type)) {
      const file = this.current;
      if (!file) throw new CdcError('INTERNAL', 'stream block without a spill file');
      file.append(peekStreamXid(data), walStart, data);
      return true;
    }
    if (!isStreamControl(type)) return false;
    const message = this.decoder.decode(data);
    switch (message.tag) {
      case 'streamStart':
        this.start(message.xid, message.firstSegment);
        return true;
      case 'streamStop':
        this.current?.flush();
        this.current = undefined;
        return true;
      case 'streamAbort':
        this.abort(message.xid, message.subXid);
        return true;
      case 'streamCommit': {
        const file = this.files.get(message.xid);
        if (!file)
          throw new CdcError('PROTOCOL_INVALID', `Stream Commit for transaction ${message.xid}, which never streamed`);
        return this.commit(file, message);
      }
      default:
        throw new CdcError('INTERNAL', `unexpected ${message.tag} message for a stream control type byte`);
    }
  }

  /** Delivery's high-water mark: a replay waits while it is passed. */
  pressure(high: boolean): void {
    this.high = high;
    if (!high) this.release();
  }

  /** Deletes every spill file and lets a waiting replay end. Called on stop and on failure. */
  close(): void {
    this.closed = true;
    this.release();
    for (const file of this.files.values()) file.remove();
    this.files.clear();
    this.current = undefined;
  }

  private start(xid: number, firstSegment: boolean): void {
    let file = this.files.get(xid);
    if (firstSegment) {
      if (file)
        throw new CdcError(
          'PROTOCOL_INVALID',
          `Stream Start marks a first segment for transaction ${xid}, which is already streaming`,
        );
      file = new SpillFile(path.join(this.dir, `${xid}.pgoutput`), this.writeBuffer);
      this.files.set(xid, file);
      this.log.info({ xid, file: file.path }, 'a large transaction streams in before its commit: spilling it to disk');
    } else if (!file) {
      throw new CdcError(
        'PROTOCOL_INVALID',
        `Stream Start continues transaction ${xid}, whose first segment was never received`,
      );
    }
    this.stats.chunks++;
    this.current = file;
  }

  private abort(xid: number, subXid: number): void {
    const file = this.files.get(xid);
    // Nothing received for it (possible for a subtransaction none of whose changes were published).
    if (!file) return;
    if (subXid === xid) {
      file.remove();
      this.files.delete(xid);
      this.stats.aborted++;
      this.log.info(
        { xid, messages: file.records },
        'streamed transaction rolled back: its spilled changes are dropped',
      );
      return;
    }
    const dropped = file.dropSubtransaction(subXid);
    if (dropped) this.stats.subtransactionsAborted++;
    this.log.debug(
      { xid, subXid, dropped },
      'subtransaction of a streamed transaction rolled back: its changes are dropped',
    );
  }

  private async commit(file: SpillFile, message: Extract<PgoutputMessage, { tag: 'streamCommit' }>): Promise<void> {
    try {
      file.close();
      this.log.info(
        { xid: message.xid, commitLsn: formatLsn(message.commitLsn), messages: file.records, bytes: file.size },
        'streamed transaction committed: delivering it from its spill file',
      );
      await this.replay(file.path, message);
      this.stats.committed++;
    } finally {
      file.remove();
      this.files.delete(message.xid);
    }
  }

  private async replay(file: string, commit: Extract<PgoutputMessage, { tag: 'streamCommit' }>): Promise<void> {
    const target = this.target;
    // The spilled messages carry their xid: decode them as inside a stream block.
    const decoder = new PgoutputDecoder({ protoVersion: 2, inStreamBlock: true });
    target.handle(
      { tag: 'begin', finalLsn: commit.commitLsn, commitTime: commit.commitTime, xid: commit.xid },
      commit.commitLsn,
    );
    for await (const record of readSpill(file)) {
      if (target.stopped() || this.closed) return;
      const message = decoder.decode(record.data);
      if (message.tag === 'relation') await target.applyRelation(message);
      else target.handle(message, record.walStart);
      if (this.high) await this.room();
    }
    if (target.stopped() || this.closed) return;
    target.handle(
      {
        tag: 'commit',
        flags: commit.flags,
        commitLsn: commit.commitLsn,
        endLsn: commit.endLsn,
        commitTime: commit.commitTime,
      },
      commit.commitLsn,
    );
  }

  private room(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private release(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** Creates the directory and deletes the spill files in it (only files named like ours). */
function removeSpillFiles(dir: string): number {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    let removed = 0;
    for (const name of readdirSync(dir)) {
      if (!SPILL_NAME.test(name)) continue;
      rmSync(path.join(dir, name), { force: true });
      removed++;
    }
    return removed;
  } catch (cause) {
    throw new CdcError(
      'CONFIG_INVALID',
      `cannot prepare the spill directory ${dir}: ${cause instanceof Error ? cause.message : String(cause)}`,
      {
        cause,
        hint: 'streaming spills large transactions next to the offsets file: make its directory writable',
      },
    );
  }
}
