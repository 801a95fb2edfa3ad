/**
 * The offset store of a sink that keeps checkpoints itself (sinks/contract.ts `SinkCheckpoints`: the
 * Kafka sink's compacted offsets topic), optionally mirrored to pgcdc's offsets file.
 *
 * The sink's copy is authoritative: with Kafka exactly-once it is committed in the same transaction
 * as the events it covers, so it can never claim more or less than Kafka holds. The file is written
 * after it and can therefore only lag behind it:
 * - file behind the sink (a crash between the two writes, or a file restored from a backup): the
 *   file is moved forward to the sink's checkpoint, and pgcdc resumes from there;
 * - file ahead of the sink, or naming another server or slot: refused (OFFSETS_DIVERGED), because
 *   resuming from either could skip or repeat changes (the topic was deleted or recreated, the file
 *   belongs to another cluster);
 * - `--offsets kafka`: no file at all; a process on another machine resumes from the sink alone.
 *
 * The mirror is written off the critical path: `commit` resolves once the sink holds the checkpoint
 * (that is what makes it durable, and what PostgreSQL may be acknowledged up to), and the file
 * follows in the background, coalesced to the latest checkpoint. The file's fsync (rename, fsync of
 * the directory) on the delivery path set the tail of the commit-to-Kafka latency: one slow fsync
 * on a busy disk held the next batch back by that long (bench/kafka-latency.ts, docs/kafka.md).
 * A failed file write fails the next `commit`; `close` waits for the file to be current.
 */
import { CdcError } from '../core/errors.ts';
import { parseLsn } from '../protocol/lsn.ts';
import type { Logger } from '../core/log.ts';
import type { SinkCheckpoints } from '../sinks/contract.ts';
import { parseCheckpointText, serializeCheckpoint, type FileOffsetStore } from './file.ts';
import type { Checkpoint, OffsetStore } from './store.ts';

const SINK_REPAIR_HINT =
  'pgcdc wrote it with a checksum, so something else wrote or damaged it: remove that record (or give pgcdc ' +
  'another offsets topic) and start over with a new snapshot';

export class SinkOffsetStore implements OffsetStore {
  private stored: Checkpoint | undefined;
  private loaded = false;
  /** The checkpoint the file should hold next, while a mirror write runs. */
  private mirrorNext: Checkpoint | undefined;
  /** The running mirror write loop (resolved when the file is current). */
  private mirroring: Promise<void> | undefined;
  private mirrorFailure: Error | undefined;

  constructor(
    private readonly channel: SinkCheckpoints,
    private readonly file: FileOffsetStore | undefined,
    private readonly log: Logger,
  ) {}

  async load(): Promise<Checkpoint | undefined> {
    const text = await this.channel.load();
    const inSink =
      text === undefined
        ? undefined
        : parseCheckpointText(text, `the checkpoint in ${this.channel.where}`, SINK_REPAIR_HINT).checkpoint;
    this.stored = inSink;
    this.loaded = true;
    if (this.file === undefined) return inSink;
    const inFile = await this.file.load();
    if (inFile === undefined) {
      if (inSink !== undefined) await this.file.replace(inSink);
      return inSink;
    }
    const where = this.channel.where;
    if (inSink === undefined) {
      throw new CdcError(
        'OFFSETS_DIVERGED',
        `the offsets file ${this.file.path} has a checkpoint at ${inFile.lsn} but ${where} holds none for slot ` +
          `${inFile.slot}: the events it covers may be gone from the sink`,
        {
          hint:
            'point pgcdc at the cluster and offsets topic it wrote to; to start over, delete the offsets file ' +
            'and drop the slot (a new snapshot follows)',
        },
      );
    }
    if (inFile.systemId !== inSink.systemId || inFile.slot !== inSink.slot || inFile.database !== inSink.database) {
      throw new CdcError(
        'OFFSETS_DIVERGED',
        `the offsets file ${this.file.path} (system ${inFile.systemId}, database ${inFile.database}, slot ` +
          `${inFile.slot}) and ${where} (system ${inSink.systemId}, database ${inSink.database}, slot ` +
          `${inSink.slot}) describe different captures`,
        { hint: 'use the offsets file that belongs to this sink, or --offsets kafka to keep none' },
      );
    }
    const fileLsn = parseLsn(inFile.lsn);
    const sinkLsn = parseLsn(inSink.lsn);
    if (fileLsn > sinkLsn) {
      throw new CdcError(
        'OFFSETS_DIVERGED',
        `the offsets file ${this.file.path} is at ${inFile.lsn}, ahead of the checkpoint in ${where} at ` +
          `${inSink.lsn}: the sink lost events the file says were delivered`,
        {
          hint:
            'check that the topics were not deleted or recreated; resuming from either would skip or repeat ' +
            'changes, so pgcdc stops (delete the offsets file to trust the sink)',
        },
      );
    }
    if (fileLsn < sinkLsn) {
      this.log.info(
        { offsets: this.file.path, from: inFile.lsn, to: inSink.lsn, sink: where },
        'the offsets file lagged behind the checkpoint in the sink (written there first): moved it forward',
      );
      await this.file.replace(inSink);
    }
    return inSink;
  }

  async commit(checkpoint: Checkpoint): Promise<void> {
    if (!this.loaded) await this.load();
    if (this.stored !== undefined && parseLsn(checkpoint.lsn) < parseLsn(this.stored.lsn)) {
      throw new CdcError(
        'INTERNAL',
        `refusing to move the checkpoint back from ${this.stored.lsn} to ${checkpoint.lsn}`,
        {
          hint: 'this is a bug in pgcdc; the stored checkpoint is unchanged',
        },
      );
    }
    this.throwMirrorFailure();
    await this.channel.store(serializeCheckpoint(checkpoint));
    this.stored = checkpoint;
    this.mirror(checkpoint);
  }

  /** Writes `checkpoint` to the file after any write running now; a newer one replaces a waiting one. */
  private mirror(checkpoint: Checkpoint): void {
    const file = this.file;
    if (file === undefined) return;
    this.mirrorNext = checkpoint;
    this.mirroring ??= (async () => {
      try {
        for (let next = this.mirrorNext; next !== undefined; next = this.mirrorNext) {
          this.mirrorNext = undefined;
          await file.commit(next);
        }
      } catch (error) {
        this.mirrorFailure =
          error instanceof Error ? error : new CdcError('LOCAL_IO', `writing the offsets file: ${String(error)}`);
      } finally {
        this.mirroring = undefined;
      }
    })();
  }

  private throwMirrorFailure(): void {
    if (this.mirrorFailure !== undefined) throw this.mirrorFailure;
  }

  /** Resolves when the file holds the last checkpoint committed (rejects if writing it failed). */
  private async mirrored(): Promise<void> {
    while (this.mirroring !== undefined) await this.mirroring;
    this.throwMirrorFailure();
  }

  async replace(checkpoint: Checkpoint): Promise<void> {
    await this.mirrored();
    await this.channel.store(serializeCheckpoint(checkpoint));
    this.stored = checkpoint;
    this.loaded = true;
    if (this.file !== undefined) await this.file.replace(checkpoint);
  }

  async close(): Promise<void> {
    try {
      await this.mirrored();
    } finally {
      await this.file?.close();
    }
  }
}
