/**
 * What the health monitor knows about a capture's slot and what it makes of it: the shared words of
 * `pgcdc status`, the alerts of a running capture, its `/metrics` and its dashboard.
 *
 * A sample is read from the server's own views (`pg_replication_slots`, `pg_current_wal_lsn()`),
 * read-only, on a connection of its own: never on the replication connection, never in a
 * transaction that could hold back vacuum.
 */

/** `pg_replication_slots.wal_status` (PostgreSQL 13+); undefined on older servers. */
export type WalStatus = 'reserved' | 'extended' | 'unreserved' | 'lost';

/** The slot and the server's WAL at one moment. Byte counts are numbers (WAL fits well in 2^53). */
export interface SlotSample {
  /** When it was read, ISO time. */
  readonly at: string;
  readonly slot: string;
  /** False when the slot does not exist (dropped, lost in an upgrade or failover). */
  readonly exists: boolean;
  /** A walsender uses the slot now. */
  readonly active: boolean;
  /** That walsender's pid (PostgreSQL 10+), else undefined. */
  readonly activePid: number | undefined;
  readonly walStatus: WalStatus | undefined;
  /**
   * Bytes of WAL that may still be written before the slot is at risk of invalidation
   * (`safe_wal_size`, PostgreSQL 13+); undefined when unlimited (`max_slot_wal_keep_size = -1`) or older.
   */
  readonly safeWalSizeBytes: number | undefined;
  /** `max_slot_wal_keep_size` in bytes; undefined when unlimited (-1) or before PostgreSQL 13. */
  readonly maxSlotWalKeepSizeBytes: number | undefined;
  /** `pg_current_wal_lsn()` ("X/Y"); on a standby, the last replayed position. */
  readonly currentLsn: string;
  readonly confirmedFlushLsn: string | undefined;
  readonly restartLsn: string | undefined;
  /** current minus confirmed flush: WAL written that the capture has not confirmed. */
  readonly lagBytes: number | undefined;
  /** current minus restart: WAL the slot keeps on the server's disk. */
  readonly retainedWalBytes: number | undefined;
  /**
   * Seconds since the commit of the last transaction made durable, while WAL is waiting behind it
   * (lagBytes > 0 with changes to read); 0 when the capture has confirmed everything; undefined when
   * no commit time is known yet.
   */
  readonly lagSeconds: number | undefined;
}

export type AlertLevel = 'ok' | 'warning' | 'critical';

/** What is watched: the four thresholds of `alerts.*`, and the slot itself (missing or lost is critical). */
export type AlertName = 'lag_bytes' | 'lag_seconds' | 'retained_wal_bytes' | 'safe_wal_size_bytes' | 'slot';

/** One watched value and its level. */
export interface AlertState {
  readonly name: AlertName;
  readonly level: AlertLevel;
  /** The value compared, undefined when not known (then the level is ok, except for `slot`). */
  readonly value: number | undefined;
  /** The threshold crossed (warning or critical), undefined at ok. */
  readonly threshold: number | undefined;
  /** One line saying what is wrong and what to do, true for this case ("ok" lines say so too). */
  readonly message: string;
  /** Since when it has been at this level, ISO time. */
  readonly since: string;
}

/**
 * Hears every sample with the alerts evaluated on it (the metrics, the dashboard's history).
 * Contract: returns at once and never throws; a listener's failure never reaches the monitor.
 */
export interface HealthListener {
  health(sample: SlotSample, alerts: readonly AlertState[]): void;
}
