/**
 * The pg-logical-replication peer of bench/peers.ts, run as a child process:
 *
 *   tsx bench/peers/pg-logical-replication.ts <slot> <publication> <output file> <expected changes>
 *
 * What a user of the npm library writes: LogicalReplicationService with its PgoutputPlugin
 * (proto_version 1), each insert/update/delete/truncate serialized to one JSON line and appended
 * to a file. The lines are batched as pgcdc batches by default (50,000 events or 100 ms, whichever
 * comes first), each batch written and fdatasynced before the slot is acknowledged up to the last
 * commit the batch holds (automatic acknowledgement, which would confirm every message as it
 * arrives before anything is durable, is off). Prints `done N` once N >= the expected changes are
 * durable, then exits. Connection: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';

const MAX_EVENTS = 50_000;
const MAX_DELAY_MS = 100;

const [slot, publication, file, expectedText] = process.argv.slice(2);
if (slot === undefined || publication === undefined || file === undefined || expectedText === undefined) {
  process.stderr.write('usage: pg-logical-replication.ts <slot> <publication> <output file> <expected changes>\n');
  process.exit(2);
}
const expected = Number(expectedText);

const fd = openSync(file, 'a');
const service = new LogicalReplicationService(
  {},
  { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
);
const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication] });

let pending: string[] = [];
let written = 0;
/** The end of the last commit seen: what may be acknowledged once the lines before it are durable. */
let lastCommitEnd: string | undefined;
let timer: NodeJS.Timeout | undefined;

function flush(): void {
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  if (pending.length > 0) {
    writeSync(fd, pending.join(''));
    fdatasyncSync(fd);
    written += pending.length;
    pending = [];
  }
  if (lastCommitEnd !== undefined) void service.acknowledge(lastCommitEnd);
  if (written >= expected) {
    process.stdout.write(`done ${written}\n`);
    closeSync(fd);
    // The library's stop() waits for the server to end the stream; the bench has what it needs.
    process.exit(0);
  }
}

function add(line: Record<string, unknown>): void {
  pending.push(`${JSON.stringify(line)}\n`);
  if (pending.length >= MAX_EVENTS) flush();
  else timer ??= setTimeout(flush, MAX_DELAY_MS);
}

const source = (relation: Pgoutput.MessageRelation): { schema: string; table: string } => ({
  schema: relation.schema,
  table: relation.name,
});

service.on('data', (lsn: string, message: Pgoutput.Message) => {
  switch (message.tag) {
    case 'insert':
      add({ op: 'c', lsn, ...source(message.relation), after: message.new });
      break;
    case 'update':
      add({ op: 'u', lsn, ...source(message.relation), before: message.old ?? message.key, after: message.new });
      break;
    case 'delete':
      add({ op: 'd', lsn, ...source(message.relation), before: message.old ?? message.key });
      break;
    case 'truncate':
      for (const relation of message.relations) add({ op: 't', lsn, ...source(relation) });
      break;
    case 'commit':
      lastCommitEnd = message.commitEndLsn ?? lastCommitEnd;
      // The last change may complete the count: flush it now rather than after the delay.
      if (written + pending.length >= expected) flush();
      break;
    default:
      break;
  }
});
service.on('error', (error: Error) => {
  process.stderr.write(`pg-logical-replication: ${error.message}\n`);
  process.exit(1);
});

await service.subscribe(plugin, slot);
