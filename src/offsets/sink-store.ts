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
    await this.channel.store(serializeCheckpoint(checkpoint));
    this.stored = checkpoint;
    if (this.file !== undefined) await this.file.commit(checkpoint);
  }

  async replace(checkpoint: Checkpoint): Promise<void> {
    await this.channel.store(serializeCheckpoint(checkpoint));
    this.stored = checkpoint;
    this.loaded = true;
    if (this.file !== undefined) await this.file.replace(checkpoint);
  }

  async close(): Promise<void> {
    await this.file?.close();
  }
}
