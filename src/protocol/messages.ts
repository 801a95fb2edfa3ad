/**
 * The pgoutput logical replication messages, protocol versions 1 to 4, as one discriminated union.
 * Grammar: https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
 *
 * Conventions:
 * - LSNs are plain numbers (a u64 read as a double: exact below 2^53, i.e. 8 PiB of WAL).
 * - Timestamps are microseconds since 2000-01-01 00:00:00 UTC, as numbers (exact until year 2255).
 * - `xid` on data messages is present only inside a streamed transaction block (protocol v2+,
 *   between Stream Start and Stream Stop); outside one it is undefined.
 * - Tuple values stay raw: text as a string, binary as a Buffer, SQL NULL as null, and an
 *   unchanged TOASTed value as the UNCHANGED_TOAST marker. Converting them is the source layer's job.
 */

export type Lsn = number;

/** Marks a column whose TOASTed value did not change and so was not sent ('u' in TupleData). */
export const UNCHANGED_TOAST: unique symbol = Symbol('pgcdc.unchangedToast');
export type UnchangedToast = typeof UNCHANGED_TOAST;

export type TupleValue = string | null | UnchangedToast | Buffer;
export type TupleData = TupleValue[];

export interface RelationColumn {
  /** Bit 1 set: the column is part of the replica identity key. */
  readonly isKey: boolean;
  readonly name: string;
  readonly typeOid: number;
  readonly typeMod: number;
}

/** 'd' default (primary key), 'n' nothing, 'f' full, 'i' index. */
export type ReplicaIdentity = 'd' | 'n' | 'f' | 'i';

export type PgoutputMessage =
  | { readonly tag: 'begin'; readonly finalLsn: Lsn; readonly commitTime: number; readonly xid: number }
  | {
      readonly tag: 'commit';
      readonly flags: number;
      readonly commitLsn: Lsn;
      readonly endLsn: Lsn;
      readonly commitTime: number;
    }
  | { readonly tag: 'origin'; readonly originLsn: Lsn; readonly name: string }
  | {
      readonly tag: 'relation';
      readonly xid: number | undefined;
      readonly relationId: number;
      readonly namespace: string;
      readonly name: string;
      readonly replicaIdentity: ReplicaIdentity;
      readonly columns: readonly RelationColumn[];
    }
  | {
      readonly tag: 'type';
      readonly xid: number | undefined;
      readonly typeOid: number;
      readonly namespace: string;
      readonly name: string;
    }
  | {
      readonly tag: 'insert';
      readonly xid: number | undefined;
      readonly relationId: number;
      readonly newTuple: TupleData;
    }
  | {
      readonly tag: 'update';
      readonly xid: number | undefined;
      readonly relationId: number;
      /** 'K': the old key columns (others null), sent when the key changed under REPLICA IDENTITY DEFAULT/INDEX. */
      readonly keyTuple: TupleData | undefined;
      /** 'O': the whole old row, sent under REPLICA IDENTITY FULL. */
      readonly oldTuple: TupleData | undefined;
      readonly newTuple: TupleData;
    }
  | {
      readonly tag: 'delete';
      readonly xid: number | undefined;
      readonly relationId: number;
      readonly keyTuple: TupleData | undefined;
      readonly oldTuple: TupleData | undefined;
    }
  | {
      readonly tag: 'truncate';
      readonly xid: number | undefined;
      readonly cascade: boolean;
      readonly restartIdentity: boolean;
      readonly relationIds: readonly number[];
    }
  | {
      readonly tag: 'message';
      readonly xid: number | undefined;
      readonly transactional: boolean;
      readonly lsn: Lsn;
      readonly prefix: string;
      readonly content: Buffer;
    }
  | { readonly tag: 'streamStart'; readonly xid: number; readonly firstSegment: boolean }
  | { readonly tag: 'streamStop' }
  | {
      readonly tag: 'streamCommit';
      readonly xid: number;
      readonly flags: number;
      readonly commitLsn: Lsn;
      readonly endLsn: Lsn;
      readonly commitTime: number;
    }
  | {
      readonly tag: 'streamAbort';
      readonly xid: number;
      readonly subXid: number;
      /** Present only with streaming = parallel (protocol v4). */
      readonly abortLsn: Lsn | undefined;
      readonly abortTime: number | undefined;
    }
  | {
      readonly tag: 'beginPrepare';
      readonly prepareLsn: Lsn;
      readonly endLsn: Lsn;
      readonly prepareTime: number;
      readonly xid: number;
      readonly gid: string;
    }
  | {
      readonly tag: 'prepare';
      readonly flags: number;
      readonly prepareLsn: Lsn;
      readonly endLsn: Lsn;
      readonly prepareTime: number;
      readonly xid: number;
      readonly gid: string;
    }
  | {
      readonly tag: 'commitPrepared';
      readonly flags: number;
      readonly commitLsn: Lsn;
      readonly endLsn: Lsn;
      readonly commitTime: number;
      readonly xid: number;
      readonly gid: string;
    }
  | {
      readonly tag: 'rollbackPrepared';
      readonly flags: number;
      readonly prepareEndLsn: Lsn;
      readonly rollbackEndLsn: Lsn;
      readonly prepareTime: number;
      readonly rollbackTime: number;
      readonly xid: number;
      readonly gid: string;
    }
  | {
      readonly tag: 'streamPrepare';
      readonly flags: number;
      readonly prepareLsn: Lsn;
      readonly endLsn: Lsn;
      readonly prepareTime: number;
      readonly xid: number;
      readonly gid: string;
    };

export type PgoutputTag = PgoutputMessage['tag'];

/** Microseconds between 1970-01-01 and 2000-01-01, the PostgreSQL epoch. */
export const PG_EPOCH_OFFSET_MICROS = 946_684_800_000_000;

/** PostgreSQL timestamp (µs since 2000) to Unix milliseconds. */
export function pgTimeToUnixMs(pgMicros: number): number {
  return Math.floor((pgMicros + PG_EPOCH_OFFSET_MICROS) / 1000);
}
