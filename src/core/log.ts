/**
 * Logging: pino to stderr. `json` writes pino's JSON lines (for machines); `pretty` writes one
 * compact line per record for people. Standard output stays free for `--sink stdout`.
 */
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { createColors } from 'picocolors';

export type { Logger };

const LEVEL_NAMES: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

type Colors = ReturnType<typeof createColors>;

function colour(pc: Colors, level: number, text: string): string {
  if (level >= 50) return pc.red(text);
  if (level >= 40) return pc.yellow(text);
  if (level >= 30) return pc.green(text);
  return pc.dim(text);
}

/** Renders pino JSON records as `HH:MM:SS level message key=value ...`. */
function prettyStream(out: NodeJS.WritableStream): Writable {
  // Colour only on a terminal: picocolors alone also colours whenever CI is set.
  const pc = createColors('isTTY' in out && out.isTTY === true && process.env.NO_COLOR === undefined);
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (!text) continue;
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(text) as Record<string, unknown>;
        } catch {
          out.write(`${text}\n`);
          continue;
        }
        const level = typeof record.level === 'number' ? record.level : 30;
        const time = new Date(typeof record.time === 'number' ? record.time : Date.now()).toISOString().slice(11, 19);
        const extras = Object.entries(record)
          .filter(([key]) => !HIDDEN.has(key))
          .map(([key, value]) => `${pc.dim(`${key}=`)}${typeof value === 'string' ? value : JSON.stringify(value)}`)
          .join(' ');
        const levelName = colour(pc, level, (LEVEL_NAMES[level] ?? 'info').padEnd(5));
        const message = typeof record.msg === 'string' ? record.msg : '';
        out.write(`${pc.dim(time)} ${levelName} ${message}${extras ? ` ${extras}` : ''}\n`);
      }
      callback();
    },
  });
}

export function createLogger(
  options: { level: string; format: 'pretty' | 'json' },
  out: NodeJS.WritableStream = process.stderr,
): Logger {
  const destination = options.format === 'json' ? out : prettyStream(out);
  return pino({ level: options.level, base: undefined, timestamp: pino.stdTimeFunctions.epochTime }, destination);
}
