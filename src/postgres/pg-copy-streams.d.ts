// pg-copy-streams 7 ships `both()` (CopyBoth, used for replication) but @types/pg-copy-streams
// only declares `from` and `to`. This adds the missing declaration.
import type { Duplex, DuplexOptions } from 'node:stream';
import type { Connection, Submittable } from 'pg';

declare module 'pg-copy-streams' {
  export interface CopyBothOptions extends DuplexOptions {
    /** Push exactly one CopyData payload per chunk. */
    alignOnCopyDataFrame?: boolean;
  }
  export class CopyBothQueryStream extends Duplex implements Submittable {
    text: string;
    submit(connection: Connection): void;
  }
  export function both(txt: string, options?: CopyBothOptions): CopyBothQueryStream;
}
