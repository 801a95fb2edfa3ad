/**
 * Which offset store a capture uses: pgcdc's offsets file, the sink's own checkpoints mirrored to
 * the file (a sink with `checkpoints`, such as Kafka or NATS), or the sink's alone (`--offsets
 * <the sink's kind>`: `--offsets kafka`, `--offsets nats`).
 */
import { CdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Sink } from '../sinks/contract.ts';
import { FileOffsetStore } from './file.ts';
import { SinkOffsetStore } from './sink-store.ts';
import type { OffsetStore } from './store.ts';

/**
 * Whether `offsets` (the `offsets` setting) keeps no file: it names the running sink's kind
 * (`--offsets kafka` with `--sink kafka`), whose own checkpoints are then the only ones. A file of
 * that name is still reachable as a path (`./kafka`).
 */
export function offsetsInSink(offsets: string, sinkKind: string): boolean {
  return offsets === sinkKind;
}

/**
 * Where the files that sit next to the offsets file go (`<base>.toast`, `<base>.spill/`, the
 * `pgcdc snapshot` mailbox `<base>.requests/`): the offsets path itself, or with the checkpoints in
 * the sink only (`--offsets kafka`) `./pgcdc-<slot>`, so captures of different slots in one working
 * directory keep them apart. None of them is a checkpoint: they hold work in progress that a start
 * rebuilds from the stream.
 */
export function sideFilesBase(offsets: string, slot: string, sinkKind: string): string {
  return offsetsInSink(offsets, sinkKind) ? `./pgcdc-${slot}` : offsets;
}

export interface OpenedOffsets {
  readonly store: OffsetStore;
  /** The offsets file, when one is kept. */
  readonly file: FileOffsetStore | undefined;
}

export async function openOffsetStore(location: string, sink: Sink, log: Logger): Promise<OpenedOffsets> {
  const channel = sink.checkpoints;
  if (offsetsInSink(location, sink.kind)) {
    if (channel === undefined) {
      throw new CdcError(
        'CONFIG_INVALID',
        `--offsets ${location} keeps the checkpoints in the ${sink.kind} sink, which stores none`,
        {
          hint:
            'use a sink that stores checkpoints (kafka, nats), or give --offsets a file path ' +
            `(a file named ${location}: ./${location})`,
        },
      );
    }
    return { store: new SinkOffsetStore(channel, undefined, log), file: undefined };
  }
  const file = await FileOffsetStore.open(location);
  if (channel === undefined) return { store: file, file };
  return { store: new SinkOffsetStore(channel, file, log), file };
}
