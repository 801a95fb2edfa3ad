/** What a setup plan is made of: the server's state, the options, and the steps (plan.ts builds them). */
import type { Platform } from './platforms.ts';
import type { KeylessTable } from './identity.ts';

/** What setup read from the server it plans for. */
export interface ServerState {
  readonly walLevel: string;
  readonly maxReplicationSlots: number;
  readonly slotsInUse: number;
  readonly maxWalSenders: number;
  readonly sendersInUse: number;
}

export interface SetupOptions {
  readonly platform: Platform;
  readonly user: string;
  /** Executed only; undefined prints a placeholder (and --apply then requires the user to exist). */
  readonly userPassword: string | undefined;
  readonly database: string;
  /** Concrete tables, or 'all' for FOR ALL TABLES with grants on `schemas`. */
  readonly tables: readonly { schema: string; table: string }[] | 'all';
  /** Schemas to grant USAGE (and default SELECT) on. */
  readonly schemas: readonly string[];
  readonly publication: string;
  readonly slot: string;
  readonly signalSchema: string | undefined;
  readonly heartbeatSchema: string | undefined;
  readonly replicaIdentityFull: boolean;
  /**
   * Server major when known (publish_via_partition_root needs 13+, publish_generated_columns 18+); undefined assumes 13
   * to 17. */
  readonly major: number | undefined;
  /** The server's state when setup is connected (--admin-url); undefined: the plan says it could not look. */
  readonly server: ServerState | undefined;
  /**
   * Published tables without a replica identity (identity.ts), when setup is connected; with
   * `replicaIdentityFull` they are made FULL, without it setup refused before planning.
   */
  readonly keyless: readonly KeylessTable[] | undefined;
  /** The `pgcdc check` command to print last (check-command.ts). */
  readonly checkCommand: string;
}

export interface SetupStep {
  /** Heading this step prints under. */
  readonly section: string;
  /** One line on what the step does and why. */
  readonly title: string;
  /** Console or restart instructions: never executed. */
  readonly manual?: true;
  /** A manual line that only informs (what setup found on the server, or advice): never listed as still to do. */
  readonly note?: true;
  /** SQL to execute (may hold the password: never print it). */
  readonly sql?: string;
  /** SQL to print. */
  readonly display?: string;
  /** Returns one row with a boolean `done`: true when the step is already in place. */
  readonly probe?: string;
  /** Completes an existing object on --apply; redundant in the printed script (left out there). */
  readonly applyOnly?: true;
}

export const SIGNAL_TABLE = 'pgcdc_signal';
export const HEARTBEAT_TABLE = 'pgcdc_heartbeat';
