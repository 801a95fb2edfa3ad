/**
 * The timeline part of the restart rule, as pure functions: does the server's current timeline still
 * hold everything pgcdc delivered? A promoted standby starts a new timeline at the end of the WAL it
 * replayed (its switch point); the old primary's WAL past that point never reached it. A stored offset
 * at or before the switch point is on the new timeline's history (resume, when the slot survived: a
 * PostgreSQL 17+ failover slot synchronised to the standby); an offset past it names changes the new
 * server never had (refused: they are lost from the new timeline, and resuming would skip the gap).
 *
 * The history comes from the replication command `TIMELINE_HISTORY <current timeline>`
 * (lifecycle/failover-slot.ts reads it): one line per ancestor timeline, `<timeline>\t<switch point>\t<reason>`.
 */
import { parseLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';

/** One line of a timeline history file: `timeline` ended (and its child began) at `switchpoint`. */
export interface TimelineEntry {
  readonly timeline: number;
  readonly switchpoint: Lsn;
}

/**
 * Parses a `.history` file's text. Blank lines and `#` comments are skipped (as the server does); a
 * malformed line throws, since a history read wrongly could let a gap through.
 */
export function parseTimelineHistory(content: string): TimelineEntry[] {
  const entries: TimelineEntry[] = [];
  for (const raw of content.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [tli, lsn] = line.split(/\s+/);
    const timeline = Number(tli);
    if (!Number.isInteger(timeline) || timeline < 1 || lsn === undefined || !/^[0-9A-Fa-f]+\/[0-9A-Fa-f]+$/.test(lsn))
      throw new Error(`malformed timeline history line: ${JSON.stringify(line)}`);
    entries.push({ timeline, switchpoint: parseLsn(lsn) });
  }
  return entries;
}

export type TimelineVerdict =
  /** The checkpoint's timeline is the server's. */
  | { readonly kind: 'same' }
  /** The server was promoted after the offset: its history holds the offset (`switchpoint` >= offset). */
  | { readonly kind: 'followed'; readonly from: number; readonly to: number; readonly switchpoint: Lsn }
  /** The server left the checkpoint's timeline at `switchpoint`, before the offset: delivered changes are not on it. */
  | { readonly kind: 'diverged'; readonly from: number; readonly to: number; readonly switchpoint: Lsn }
  /** The checkpoint's timeline is not an ancestor of the server's (or the history could not be read). */
  | { readonly kind: 'unrelated'; readonly from: number; readonly to: number };

export interface TimelineInput {
  /** The checkpoint's timeline and offset. */
  readonly timeline: number;
  readonly offset: Lsn;
  /** The server's current timeline (IDENTIFY_SYSTEM). */
  readonly current: number;
  /** The current timeline's history; undefined when it was not read (timeline 1 has none). */
  readonly history: readonly TimelineEntry[] | undefined;
}

/** Where the checkpoint's timeline stands against the server's. Equal offsets and switch points are fine. */
export function timelineVerdict(input: TimelineInput): TimelineVerdict {
  const { timeline: from, current: to } = input;
  if (from === to) return { kind: 'same' };
  if (from > to || input.history === undefined) return { kind: 'unrelated', from, to };
  const entry = input.history.find((e) => e.timeline === from);
  if (!entry) return { kind: 'unrelated', from, to };
  if (input.offset <= entry.switchpoint) return { kind: 'followed', from, to, switchpoint: entry.switchpoint };
  return { kind: 'diverged', from, to, switchpoint: entry.switchpoint };
}
