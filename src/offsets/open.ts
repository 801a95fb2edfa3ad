/**
 * Which offset store a capture uses: pgcdc's offsets file, the sink's own checkpoints mirrored to
 * the file (a sink with `checkpoints`, such as Kafka), or the sink's alone (`--offsets kafka`).
 */
import { CdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Sink } from '../sinks/contract.ts';
import { FileOffsetStore } from './file.ts';
import { SinkOffsetStore } from './sink-store.ts';
import type { OffsetStore } from './store.ts';

/** The `offsets` value that keeps no file: checkpoints live in the sink only. */
export const OFFSETS_IN_SINK = 'kafka';

/**
 * Where the files that sit next to the offsets file go (`<base>.toast`, `<base>.spill/`, the
 * `pgcdc snapshot` mailbox `<base>.requests/`): the offsets path itself, or with `--offsets kafka`
 * `./pgcdc-<slot>`, so captures of different slots in one working directory keep them apart. None of
 * them is a checkpoint: they hold work in progress that a start rebuilds from the stream.
 */
export function sideFilesBase(offsets: string, slot: string): string {
  return offsets === OFFSETS_IN_SINK ? `./pgcdc-${slot}` : offsets;
}

export interface OpenedOffsets {
  readonly store: OffsetStore;
  /** The offsets file, when one is kept. */
  readonly file: FileOffsetStore | undefined;
}

export async function openOffsetStore(location: string, sink: Sink, log: Logger): Promise<OpenedOffsets> {
  const channel = sink.checkpoints;
  if (location === OFFSETS_IN_SINK) {
    if (channel === undefined) {
      throw new CdcError('CONFIG_INVALID', `--offsets ${OFFSETS_IN_SINK} needs a sink that stores checkpoints`, {
        hint: `use --sink kafka, or give --offsets a file path (a file named ${OFFSETS_IN_SINK}: ./${OFFSETS_IN_SINK})`,
      });
    }
    return { store: new SinkOffsetStore(channel, undefined, log), file: undefined };
  }
  const file = await FileOffsetStore.open(location);
  if (channel === undefined) return { store: file, file };
  return { store: new SinkOffsetStore(channel, file, log), file };
}
