/**
 * The NATS reference publisher (bench/sinks/nats.ts runs it as a child process): creates the
 * file-storage stream `bench-reference` (subjects `benchref.>`) and publishes `events` messages of
 * `eventBytes` bytes to it with the official client, each with its own Nats-Msg-Id, at most `inFlight`
 * awaiting their PubAck, then exits once every PubAck arrived.
 *
 *   node --import tsx bench/sinks/nats-reference.ts <url> <events> <eventBytes> <inFlight>
 */
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';

const [url = '', eventsText = '0', eventBytesText = '100', inFlightText = '1024'] = process.argv.slice(2);
const events = Number(eventsText);
const payload = Buffer.alloc(Number(eventBytesText), 0x78);
const inFlight = Number(inFlightText);

const nc = await connect({ servers: url });
const jsm = await jetstreamManager(nc);
await jsm.streams.add({ name: 'bench-reference', subjects: ['benchref.>'], storage: StorageType.File });
const js = jetstream(nc);
let pending = 0;
let failed: Error | undefined;
let wake: (() => void) | undefined;
for (let n = 0; n < events; n++) {
  while (pending >= inFlight) await new Promise<void>((resolve) => (wake = resolve));
  if (failed !== undefined) throw failed;
  pending++;
  js.publish('benchref.public.bench', payload, { msgID: `0/${n.toString(16)}:0` }).then(
    () => {
      pending--;
      wake?.();
    },
    (error: unknown) => {
      failed = error instanceof Error ? error : new Error(String(error));
      pending--;
      wake?.();
    },
  );
}
while (pending > 0) await new Promise<void>((resolve) => (wake = resolve));
if (failed !== undefined) throw failed;
await nc.close();
