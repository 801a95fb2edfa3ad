/**
 * What the preflight rules judge (read off the server by preflight.ts) and the small helpers they share.
 */
import type { SslMode } from '../config.ts';
import type { Problem } from './problem.ts';
import type { InactiveSlot } from './retained-wal.ts';
import type { PublicationFacts, RoleFacts, ServerSettings, SlotFacts, TableFacts, TlsFacts } from './facts.ts';
import type { FailoverFacts } from './failover-rules.ts';

/** `check` judges everything; `run` leaves to the capture what it handles itself (see preflightForRun). */
export type PreflightMode = 'check' | 'run';

export interface PreflightInput {
  readonly mode: PreflightMode;
  readonly host: string;
  readonly database: string;
  readonly sslmode: SslMode;
  readonly settings: ServerSettings;
  readonly role: RoleFacts;
  readonly tls: TlsFacts;
  /** The captured tables as found; `unmatched` are selection entries that found nothing. */
  readonly tables: readonly TableFacts[];
  readonly unmatched: readonly string[];
  /** True when no selection was given: the publication's own tables are captured. */
  readonly tablesFromPublication: boolean;
  readonly publicationName: string;
  readonly publication: PublicationFacts;
  /** Published tables outside the selection: the server sends their changes, pgcdc drops them. */
  readonly extraPublished?: readonly { readonly schema: string; readonly table: string }[];
  readonly createPublication: boolean;
  readonly slotName: string;
  readonly slot: SlotFacts | undefined;
  /** The configured signal table, when one is; `table` undefined when it does not exist. */
  readonly signal: { readonly name: string; readonly table: TableFacts | undefined } | undefined;
  /** PostgreSQL 17+ primaries: standbys and slot synchronisation (failover-rules.ts). */
  readonly failover?: FailoverFacts | undefined;
  /** The configured slotFailover (auto when absent). */
  readonly slotFailover?: 'auto' | boolean;
  /** Inactive pgoutput slots and the WAL they retain (`check` only) and the bytes that are too many. */
  readonly inactiveSlots?: { readonly slots: readonly InactiveSlot[]; readonly thresholdBytes: number };
}

export const GIB = 1024 * 1024 * 1024;

export function problem(severity: Problem['severity'], code: string, message: string, fix: string): Problem {
  return { severity, code, message, fix };
}

export function name(t: { schema: string; table: string }): string {
  return `${t.schema}.${t.table}`;
}
