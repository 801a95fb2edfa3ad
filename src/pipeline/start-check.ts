/**
 * The restart rule (lifecycle/restart-rule.ts) reads the slot before START_REPLICATION; the slot may change in
 * between (dropped and recreated, or consumed by someone else), and PostgreSQL then streams from
 * the new slot's position without a word. So once the stream runs, the slot is read again: when
 * it is active and owned by this walsender nobody else can move it, and its confirmed position is
 * where the stream really starts. Until this check passes, the stream loop processes no frame and
 * acknowledges nothing past where it asked to start.
 */
import type pg from 'pg';
import { setTimeout as delay } from 'node:timers/promises';
import { CdcError } from '../core/errors.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import { readSlot } from '../postgres/catalog.ts';
import type { Logger } from '../core/log.ts';
import type { CommitIdentity } from '../offsets/store.ts';
import { HistoryCheck } from './history-check.ts';

/** How long the slot may take to show as active for this walsender (START_REPLICATION is fast). */
const ACTIVE_TIMEOUT_MS = 60_000;
const POLL_MS = 20;

export interface StartCheck {
  readonly query: pg.ClientBase;
  readonly slot: string;
  readonly major: number;
  /** The walsender's backend pid (ReplicationSession.backendPid). */
  readonly backendPid: number;
  /** The stored offset (or, on a first start, the slot's consistent or confirmed point). */
  readonly expected: Lsn;
  /** The position START_REPLICATION asked for. */
  readonly requested: Lsn;
  /** True once the stream failed or is stopping: the check gives up quietly. */
  readonly stopped: () => boolean;
}

/**
 * Resolves with where the stream starts (max(requested, confirmed_flush_lsn)), or undefined when
 * the stream stopped first. Rejects with SLOT_AHEAD_OF_OFFSET when the slot confirmed past
 * `expected`: the changes in between would be skipped.
 */
export async function verifyStreamStart(check: StartCheck): Promise<Lsn | undefined> {
  const deadline = Date.now() + ACTIVE_TIMEOUT_MS;
  for (;;) {
    if (check.stopped()) return undefined;
    const slot = await readSlot(check.query, check.slot, check.major);
    if (slot !== undefined && slot.active && slot.activePid === check.backendPid) {
      const confirmed = slot.confirmedFlush ?? 0;
      if (confirmed > check.expected) {
        throw new CdcError(
          'SLOT_AHEAD_OF_OFFSET',
          `slot ${check.slot} starts streaming at ` +
            `${formatLsn(confirmed)}, past the stored offset ${formatLsn(check.expected)}: ` +
            (`it changed after pgcdc checked it (dropped and recreated, or used by another consumer), and ` +
              `changes in between may be lost`),
          {
            hint:
              'nothing was acknowledged; find out who changed the slot; to start over on purpose, remove ' +
              'the offsets file and the output it belongs to',
          },
        );
      }
      return Math.max(confirmed, check.requested);
    }
    if (Date.now() > deadline) {
      throw new CdcError(
        'REPLICATION_STREAM_FAILED',
        `slot ${check.slot} did not become active for this stream within ${ACTIVE_TIMEOUT_MS / 1000} s`,
        { retryable: true },
      );
    }
    await delay(POLL_MS);
  }
}

/** What the stream loop knows at START_REPLICATION (a subset of its LoopDeps). */
export interface StreamStart {
  readonly query: pg.ClientBase;
  readonly config: { readonly slot: string };
  readonly facts: { readonly major: number };
  readonly session: { readonly backendPid: number };
  readonly startLsn: Lsn;
  readonly replayFrom: Lsn;
  readonly lastCommit: CommitIdentity | undefined;
  readonly log: Logger;
}

/**
 * `verifyStreamStart` for the stream loop, then the check of the replay up to the stored offset
 * when the stream starts before it. Undefined when the stream stopped first.
 */
export async function checkStreamStart(
  start: StreamStart,
  stopped: () => boolean,
): Promise<{ readonly history: HistoryCheck | undefined } | undefined> {
  const from = await verifyStreamStart({
    query: start.query,
    slot: start.config.slot,
    major: start.facts.major,
    backendPid: start.session.backendPid,
    expected: start.startLsn,
    requested: start.replayFrom,
    stopped,
  });
  if (from === undefined) return undefined;
  if (from >= start.startLsn) return { history: undefined };
  start.log.info(
    { from: formatLsn(from), to: formatLsn(start.startLsn) },
    'the slot is behind the stored offset: replaying the transactions in between (skipped, as delivered) to ' +
      'check they are the ones delivered',
  );
  return { history: new HistoryCheck(start.startLsn, start.lastCommit, from) };
}
