/**
 * Is the server's WAL the history pgcdc delivered? A restored file-level copy of the data
 * directory keeps the system identifier and the timeline, so IDENTIFY_SYSTEM cannot tell; once it
 * has written past the stored offset, the offset is not "ahead of the server" either. But its slot
 * is older than the checkpoint (confirmed_flush_lsn < the stored lsn), so the stream replays the
 * transactions before the stored offset, which the assembler skips as delivered. This class
 * watches that replay:
 *
 * - the last delivered commit (Checkpoint.lastCommit) must appear again at the same commit LSN
 *   with the same xid and end LSN, when the replay starts at or before it;
 * - no transaction may commit after it and before the stored offset (pgcdc received every
 *   transaction up to the stored offset, so on the same history there is none);
 * - the stream must not pass the stored offset without showing the last commit.
 *
 * Anything else is a different history: SYSTEM_CHANGED, thrown from the message that shows it,
 * before any of its events exist. Until the replay is verified, the stream loop acknowledges
 * nothing past where the replay started, so a refused start leaves the slot as it was and the
 * next start checks again.
 *
 * Keepalives prove little: PostgreSQL 15+ delays a transaction's Begin until its first published
 * change, and a keepalive sent meanwhile already carries the position after its commit. So the
 * last commit is only ever taken as missing on a Begin (or message) past it, never on a keepalive.
 */
import { CdcError } from '../core/errors.ts';
import { formatLsn, parseLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { CommitIdentity } from '../offsets/store.ts';

const START_OVER =
  'pgcdc will not resume on a different history; to start over on purpose, remove the offsets file and the ' +
  'output it belongs to';

export class HistoryCheck {
  private readonly stored: Lsn;
  private readonly last: { readonly commitLsn: Lsn; readonly endLsn: Lsn; readonly xid: number } | undefined;
  /** The replay starts at or before the last commit, so it must show it. */
  private readonly mustSee: boolean;
  private seen = false;
  private inLast = false;
  private passed = false;
  private confirmed: boolean;

  /**
   * `stored`: the checkpoint's lsn; `lastCommit`: its last delivered commit; `from`: where the
   * stream really starts (the larger of the requested position and the slot's confirmed_flush_lsn).
   */
  constructor(stored: Lsn, lastCommit: CommitIdentity | undefined, from: Lsn) {
    this.stored = stored;
    this.last = lastCommit && {
      commitLsn: parseLsn(lastCommit.commitLsn),
      endLsn: parseLsn(lastCommit.endLsn),
      xid: lastCommit.xid,
    };
    this.mustSee = this.last !== undefined && this.last.commitLsn >= from;
    this.confirmed = from >= stored;
  }

  /**
   * Nothing seen so far contradicts the stored history, and what must be seen was: acknowledging past the replay's
   * start is safe. */
  get verified(): boolean {
    return this.confirmed;
  }

  /** The stream passed the stored offset: nothing more to check. */
  get finished(): boolean {
    return this.passed;
  }

  /** A Begin: `commitLsn` is its commit record's LSN (final_lsn). */
  begin(commitLsn: Lsn, xid: number): void {
    if (this.passed) return;
    if (commitLsn >= this.stored) {
      this.pass(commitLsn);
      return;
    }
    const last = this.last;
    if (last === undefined || commitLsn < last.commitLsn) return; // delivered before: replayed and skipped
    if (commitLsn === last.commitLsn) {
      if (xid !== last.xid)
        throw this.differs(
          `the transaction committed at ` +
            `${formatLsn(commitLsn)} is xid ${xid}, and pgcdc delivered xid ${last.xid} there`,
        );
      this.inLast = true;
      return;
    }
    if (this.mustSee && !this.seen) throw this.missing(commitLsn);
    throw this.differs(
      `a transaction (xid ` +
        (`${xid}) committed at ` +
          `${formatLsn(commitLsn)}, before the stored offset ${formatLsn(this.stored)}, that pgcdc never delivered`),
    );
  }

  /** A Commit of the open transaction. */
  commit(endLsn: Lsn): void {
    if (!this.inLast) return;
    this.inLast = false;
    const last = this.last;
    if (last === undefined) return;
    if (endLsn !== last.endLsn) {
      throw this.differs(
        `the transaction committed at ` +
          (`${formatLsn(last.commitLsn)} ends at ` +
            `${formatLsn(endLsn)}, and the one pgcdc delivered ended at ${formatLsn(last.endLsn)}`),
      );
    }
    this.seen = true;
    this.confirmed = true;
  }

  /** A non-transactional logical message at `lsn`. */
  message(lsn: Lsn): void {
    if (!this.passed && lsn >= this.stored) this.pass(lsn);
  }

  /** A keepalive outside a transaction: the server has sent everything before `walEnd`. */
  keepalive(walEnd: Lsn): void {
    // Only when nothing must still be seen: see the top of this file.
    if (!this.confirmed && walEnd >= this.stored && !(this.mustSee && !this.seen)) this.confirmed = true;
  }

  private pass(position: Lsn): void {
    if (this.mustSee && !this.seen) throw this.missing(position);
    this.passed = true;
    this.confirmed = true;
  }

  private missing(position: Lsn): CdcError {
    const last = this.last;
    const which =
      last === undefined
        ? 'the last delivered transaction'
        : `the last delivered transaction (xid ${last.xid}, committed at ${formatLsn(last.commitLsn)})`;
    return this.differs(`the stream reached ${formatLsn(position)} without ${which}`);
  }

  private differs(detail: string): CdcError {
    return new CdcError(
      'SYSTEM_CHANGED',
      `the server's WAL is not the history pgcdc delivered up to the stored offset ` +
        `${formatLsn(this.stored)} (a restored or rewound server?): ${detail}; changes may have been lost`,
      { hint: START_OVER },
    );
  }
}
