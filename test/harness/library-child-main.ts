/**
 * A program that embeds pgcdc through the library, as a user's would: `capture()` with a raw
 * handler that appends each batch's JSON lines to a file and fsyncs it before resolving, so what
 * the handler accepted survives a SIGKILL. At start it cuts a torn last line (a kill in mid-write:
 * never acknowledged, delivered again). SIGTERM stops it cleanly (exit 0). Prints `streaming` on
 * stdout once the engine streams. Run by test/harness/library-child.ts.
 *
 *   node --import tsx library-child-main.ts <out file> <capture options as JSON>
 */
import { open } from 'node:fs/promises';
import { capture, type CaptureSettings } from '../../src/index.ts';

const [out, optionsJson] = process.argv.slice(2);
if (out === undefined || optionsJson === undefined) throw new Error('usage: library-child-main.ts <out> <options>');
const settings = JSON.parse(optionsJson) as CaptureSettings;

const file = await open(out, 'a+');
const { size } = await file.stat();
if (size > 0) {
  const text = await file.readFile();
  const keep = text.lastIndexOf(0x0a) + 1;
  if (keep < size) {
    await file.truncate(keep);
    await file.sync();
  }
}

const handle = capture({
  ...settings,
  raw: true,
  handler: async (batch) => {
    await file.appendFile(batch.data);
    await file.sync();
  },
  onEngineEvent: (event) => {
    if (event.type === 'state' && event.state === 'streaming') process.stdout.write('streaming\n');
  },
});
process.on('SIGTERM', () => {
  void handle.stop().then((clean) => process.exit(clean ? 0 : 1));
});
handle.done.catch((error: unknown) => {
  process.stderr.write(`library child: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
