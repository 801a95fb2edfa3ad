/**
 * The command-line options of a capture, shared by `pgcdc run` and `pgcdc drain` (the same capture
 * run to an end): one list, so the two commands cannot drift apart. run-command.ts turns the parsed
 * flags into the config layer (`flagsToConfig`).
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { ENVELOPE_FORMATS, SNAPSHOT_METHODS, SNAPSHOT_MODES } from '../config.ts';
import { describeSinkKinds } from '../sinks/registry.ts';

/** The options of a capture (`run`, and `drain`, which runs the same capture to an end). */
export function addCaptureOptions(command: Command): Command {
  return (
    command
      .option('-c, --config <file>', 'YAML config file (flags override it; see docs/config.md)')
      .option(
        '--source <url>',
        'postgres://user@host:5432/db?sslmode=verify-full (sslmode defaults to require; password: PGPASSWORD, ' +
          '~/.pgpass or --password-file); PG* variables also work',
      )
      .option('--slot <name>', 'replication slot, created when missing (default pgcdc_slot)')
      .option('--publication <name>', 'publication, created FOR TABLE the --tables when missing (default pgcdc_pub)')
      .option('--tables <list>', 'schema.table,schema.*,... to capture (default: every table of the publication)')
      .option('--exclude-tables <list>', 'patterns removed from the selection, e.g. public.tmp_*')
      .option('--tables-file <csv>', 'CSV without a header, one schema,table per row (added to --tables)')
      .option('--signal-table <schema.table>', 'signal table (checked: exists, writable, in the publication)')
      .option(
        '--upgraded-from <system-id>',
        "after pg_upgrade (17+, slot drained): the old cluster's system identifier, accepted once (docs/upgrades.md)",
      )
      // No .choices(): the config validation names an unknown kind in one line, listing the known ones.
      .option('--sink <kind>', `where events go: ${describeSinkKinds()}`)
      .option('--out <dir>', 'JSONL output directory, one file per topic (default ./events)')
      .option('--kafka-bootstrap <servers>', 'Kafka: host:port,... of the brokers (sink.bootstrapServers)')
      .option(
        '--kafka-delivery <mode>',
        'Kafka: exactly-once (default: transactions, checkpoint in Kafka) or at-least-once (idempotent producer)',
      )
      .option('--nats-url <urls>', 'NATS: nats://host:port,... or tls://... of the servers (sink.servers)')
      .option(
        '--redis-url <url>',
        'Redis: redis://host:6379/0 or rediss://host:6380/0 (sink.url; no password: sink.passwordFile or passwordEnv)',
      )
      .option(
        '--http-url <url>',
        'HTTP: the URL events are POSTed to (sink.url; credentials go in sink.headers from a file or env, not here)',
      )
      .option(
        '--offsets <file>',
        'offsets file: the durable position (default ./pgcdc-offsets.json); the sink kind ' +
          '(kafka, nats): checkpoints in the sink only',
      )
      .option('--topic-prefix <prefix>', 'topic prefix (default: the database name)')
      .addOption(
        new Option('--topic-naming <naming>', 'prefix: <prefix>.<schema>.<table>; database: <db>_<topic>').choices([
          'prefix',
          'database',
        ]),
      )
      .addOption(
        new Option(
          '--format <format>',
          'json: the event envelope (default); json-with-schema: Kafka Connect {"schema","payload"} key and value',
        ).choices([...ENVELOPE_FORMATS]),
      )
      .option('--no-create-publication', 'never create the publication; fail with the SQL to run instead')
      .addOption(
        new Option(
          '--slot-failover <when>',
          'a PostgreSQL 17+ failover slot, copied to standbys with sync_replication_slots: auto (on 17+ on a ' +
            'primary, default), true, false',
        ).choices(['auto', 'true', 'false']),
      )
      .addOption(
        new Option(
          '--on-lost <policy>',
          'slot lost, dropped or on another cluster: fail (default, exit 1) or resnapshot (new slot, re-read ' +
            'online what the gap can have changed; docs/recovery.md)',
        ).choices(['fail', 'resnapshot']),
      )
      .addOption(
        new Option(
          '--on-lost-deletes <mode>',
          'with --on-lost resnapshot: keep (default) the keys the output holds and the source lacks (deleted in ' +
            'the gap), or emit a delete for each (JSONL sink; docs/recovery.md)',
        ).choices(['emit', 'keep']),
      )
      .addOption(
        new Option(
          '--snapshot-mode <mode>',
          'initial: read existing rows first (default); never; always: on every start; initial_only: read, then ' +
            'exit; when_needed: again when the offset is unusable',
        ).choices([...SNAPSHOT_MODES]),
      )
      .addOption(
        new Option(
          '--snapshot-method <method>',
          'incremental snapshot watermarks: auto (default), read-only (PG13+), signal-table, message (PG14+)',
        ).choices([...SNAPSHOT_METHODS]),
      )
      .option('--snapshot-include <list>', 'patterns of the captured tables to backfill (default: all)')
      .option('--snapshot-skip <list>', 'patterns of captured tables not to backfill')
      .addOption(
        new Option(
          '--snapshot-progress <how>',
          'snapshot progress: auto (bars on a terminal, else lines), bars, lines, off',
        ).choices(['auto', 'bars', 'lines', 'off']),
      )
      .option('--snapshot-chunk-size <n>', 'rows per snapshot chunk (default 20000)')
      .option(
        '--snapshot-parallelism <n>',
        'readers of the initial snapshot: ranges of one table or of several read at once (default 1)',
      )
      .option(
        '--snapshot-threads <n>',
        'threads serializing the initial snapshot beside the main thread, for hosts with CPUs to spare (default 0)',
      )
      .option(
        '--streaming',
        'PostgreSQL 14+: receive large transactions while they run, spilled to disk next to the offsets file ' +
          'until their commit',
      )
      .option('--batch-size <n>', 'events per sink write (default 50000; a batch is also written at 16 MiB)')
      .addOption(
        new Option('--log-level <level>', 'log level (default info)').choices([
          'fatal',
          'error',
          'warn',
          'info',
          'debug',
          'trace',
        ]),
      )
      .addOption(new Option('--log-format <format>', 'pretty or json logs on stderr').choices(['pretty', 'json']))
      .option('--retry-initial-delay <ms>', 'first delay before starting again after a retried fault (default 500)')
      .option('--retry-max-delay <ms>', 'longest delay between two attempts (default 30000)')
      .option(
        '--retry-give-up-after <ms>',
        'exit 1 after faults for this long without recovering (default 900000; 0: never retry)',
      )
      .option(
        '--http <host:port>',
        'serve /metrics, /healthz, /readyz, /status and the dashboard at / (e.g. 127.0.0.1:9187; off loopback a ' +
          'token is required)',
      )
      .option('--http-token-file <file>', 'file holding the HTTP bearer token (or the PGCDC_HTTP_TOKEN variable)')
  );
}
