/**
 * The heartbeat table as a name: which table the config names, and whether a table is it. pgcdc's
 * own table, never captured (pipeline/heartbeat.ts writes it; `pgcdc setup` creates it).
 */
import type { Config } from '../config.ts';
import { CdcError, toCdcError } from '../core/errors.ts';
import { parseTableName } from './table-name.ts';

/** The heartbeat table's columns, as `pgcdc setup` creates them and `heartbeatStatements` writes them. */
export const HEARTBEAT_COLUMNS = 'id int PRIMARY KEY, ts timestamptz NOT NULL DEFAULT now()';

export interface HeartbeatTarget {
  readonly schema: string;
  readonly table: string;
}

/** The heartbeat table named by the config, if any (bad names are a config error). */
export function heartbeatTable(config: Config['heartbeat']): HeartbeatTarget | undefined {
  if (config.table === undefined) return undefined;
  try {
    return parseTableName(config.table);
  } catch (error) {
    throw new CdcError('CONFIG_INVALID', `heartbeat.table: ${toCdcError(error).message}`, {
      hint: 'name it schema.table, e.g. pgcdc.pgcdc_heartbeat',
    });
  }
}

export function isHeartbeatTable(config: Config['heartbeat'], table: HeartbeatTarget): boolean {
  const target = heartbeatTable(config);
  return target !== undefined && target.schema === table.schema && target.table === table.table;
}
