/**
 * Reading a keyless table online as an older snapshot saw it, as far as that is possible: the
 * continuation of an interrupted initial snapshot (lifecycle/snapshot-mode.ts).
 *
 * The initial snapshot's rows are the table as the exported snapshot S saw it; the stream starts
 * right after S. A keyless table read online in its current state would also return the rows
 * inserted after S, which the stream delivers too: each would arrive twice. So the online read
 * keeps only row versions whose inserting transaction (`xmin`) S saw as committed: not at or after
 * S's xmax, and not in S's list of running transactions. The list of a snapshot exported by
 * CREATE_REPLICATION_SLOT holds every xid between its xmin and xmax that had not committed,
 * subtransactions included, so a row written in a savepoint is judged right too.
 *
 * `xmin` is 32 bits (a frozen row keeps its raw xmin); the snapshots' xids are 64. Rows inserted
 * after S have an xmin in [S.xmax, the read's xmax); every other row the read sees is older than S
 * and committed, so S saw it. The test is made on residues modulo 2^32 against that window and S's
 * running list, which is exact only while no row can be 2^32 xids older than the read: so it is
 * used only when S.xmax is below 2^31 (xminComparable) and the read's xmax stays within 2^31 of
 * it, which keeps every xid ever assigned below 2^32. Otherwise the snapshot is taken again.
 *
 * What this cannot do: a row S saw that was updated or deleted since is no longer in the heap to
 * be read; its update or delete streams with a `before` that was never delivered. So it is exact
 * only for tables whose rows are never updated or deleted (a keyless table without REPLICA
 * IDENTITY FULL: PostgreSQL refuses those once published for them). Under FULL the initial
 * snapshot is taken again instead.
 */
import { CdcError } from '../core/errors.ts';
import { quoteLiteral } from '../postgres/quote.ts';

const XID_SPACE = 4294967296n;

interface SnapshotXids {
  readonly xmin: bigint;
  readonly xmax: bigint;
  readonly xip: readonly bigint[];
}

/** `xmin:xmax:xip,...` (txid_current_snapshot / pg_current_snapshot text) with 64-bit xids. */
export function parseSnapshotText(text: string): SnapshotXids {
  const match = /^([0-9]+):([0-9]+):([0-9,]*)$/.exec(text);
  if (!match) throw new CdcError('PROTOCOL_INVALID', `unexpected snapshot text ${JSON.stringify(text.slice(0, 80))}`);
  const list = match[3] ?? '';
  return {
    xmin: BigInt(match[1] ?? '0'),
    xmax: BigInt(match[2] ?? '0'),
    xip: list === '' ? [] : list.split(',').map((x) => BigInt(x)),
  };
}

/**
 * Whether rows can be told apart by 32-bit xmin against snapshot `asOf` for the next 2^31 xids:
 * every xid ever assigned stays below 2^32, so a residue is the xid itself.
 */
export function xminComparable(asOf: string): boolean {
  return parseSnapshotText(asOf).xmax < XID_SPACE / 2n;
}

/**
 * A SQL condition on a heap row: its version was inserted by a transaction that snapshot `asOf`
 * saw as committed. `read` is the snapshot of the transaction that runs the query (rows it cannot
 * see are not returned anyway).
 */
export function visibleInSnapshotSql(asOf: string, read: string): string {
  const old = parseSnapshotText(asOf);
  const now = parseSnapshotText(read);
  const since = now.xmax > old.xmax ? now.xmax - old.xmax : 0n;
  if (!xminComparable(asOf) || since >= XID_SPACE / 2n) {
    throw new CdcError(
      'SNAPSHOT_CONFLICT',
      `too many transaction ids for the snapshot ` +
        `${asOf} (a 32-bit xmin could be taken for another): its rows cannot be told apart any more`,
      {
        hint: 'take the snapshot again (a new offsets file and output directory)',
      },
    );
  }
  const xmin = `xmin::text::bigint`;
  const base = old.xmax % XID_SPACE;
  const after = `(${xmin} - ${base} + ${XID_SPACE}) % ${XID_SPACE} < ${since}`;
  const running =
    old.xip.length === 0
      ? ''
      : ` OR ${xmin} = ANY ('{${[...new Set(old.xip.map((x) => x % XID_SPACE))].join(',')}}'::bigint[])`;
  return `NOT (${after}${running})`;
}

/**
 * A lost-slot recovery's condition on a heap row (lifecycle/lost-slot.ts): its version was written
 * at or after `horizon` (a 64-bit xid). `age()` counts back from the current xid in 32-bit modular
 * arithmetic, so the comparison stays right across wraparound while the horizon is within 2^31
 * (lost-slot.ts uses it only within 2^30). Frozen rows: FrozenTransactionId has the largest age and
 * is left out (it is old); the xmin column shows a frozen row's raw xid, which is older than the
 * horizon unless the row was frozen right after a write in the gap (read, as it should be) or is
 * over 2^31 xids old, when its age wraps negative and it is read once more (harmless: a restated
 * row, never a missed one). Undefined when the horizon's low 32 bits are not a normal xid (then
 * every row is read).
 */
export function sinceHorizonSql(horizon: string): string | undefined {
  const low = BigInt(horizon) % XID_SPACE;
  if (low < 3n) return undefined;
  return `age(xmin) <= age(${quoteLiteral(low.toString())}::xid)`;
}
