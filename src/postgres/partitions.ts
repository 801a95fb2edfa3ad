/**
 * Partition roots. Without publish_via_partition_root, pgoutput names the leaf partition a change
 * landed in; pgcdc reports it under the partitioned table users asked for, as Debezium users expect.
 */
import type pg from 'pg';
import { sourceFailure } from './source-errors.ts';

export interface PartitionRoot {
  readonly schema: string;
  readonly table: string;
}

/**
 * The top-most partitioned ancestor of `relid`, or undefined when it is not a partition. Walks
 * pg_inherits (pg_partition_root exists only from PostgreSQL 12).
 */
export async function partitionRoot(client: pg.ClientBase, relid: number): Promise<PartitionRoot | undefined> {
  const { rows } = await client
    .query<{ schema: string; table: string }>(
      `with recursive up(relid, depth) as (
       select $1::oid, 0
       union all
       select i.inhparent, up.depth + 1 from pg_inherits i join up on i.inhrelid = up.relid
        join pg_class p on p.oid = i.inhparent and p.relkind = 'p'
     )
     select n.nspname as schema, c.relname as table
       from up join pg_class c on c.oid = up.relid join pg_namespace n on n.oid = c.relnamespace
      where up.depth > 0
      order by up.depth desc limit 1`,
      [relid],
    )
    .catch((cause: unknown) => {
      throw sourceFailure(cause, `looking up the partition root of relation ${relid}`);
    });
  return rows[0];
}
