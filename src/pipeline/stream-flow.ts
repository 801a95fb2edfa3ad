/**
 * Flow control of the replication stream: reading pauses while the sink is behind (Delivery's high-water mark)
 * or while frames are held (the start check, a Relation message's catalog lookup, the replay of a streamed
 * transaction), and resumes when neither holds. Status updates go out whatever the state of reading, so the
 * walsender never hits wal_sender_timeout.
 *
 * Separate from the stream loop (stream-loop.ts), which decides what to do next and does it: this file keeps
 * the two reasons to pause and the one switch that pauses and resumes the stream.
 */
import { toCdcError, type CdcError } from '../core/errors.ts';
import type { FrameStream } from './loop-ports.ts';

export class StreamFlow {
  private stream: FrameStream | undefined;
  /** Frames are held: the start check, a catalog lookup or a streamed transaction's replay is pending. */
  private holding = false;
  /** The sink is behind (Delivery's high-water mark). */
  private pressure = false;
  private paused = false;
  /** Held work settled: the loop may process frames again. */
  private readonly released: () => void;
  /** Held work failed: the capture stops. */
  private readonly failed: (error: CdcError) => void;

  constructor(released: () => void, failed: (error: CdcError) => void) {
    this.released = released;
    this.failed = failed;
  }

  /** Frames are held: none is processed until the held work settles. */
  get blocked(): boolean {
    return this.holding;
  }

  /** The stream to pause and resume, once started. */
  attach(stream: FrameStream): void {
    this.stream = stream;
  }

  /** Delivery crossed its high-water mark (`high`) or fell back under it. */
  setPressure(high: boolean): void {
    this.pressure = high;
    this.update();
  }

  /** Holds every later frame until `work` settles (a failure stops the capture, as error `code`). */
  hold(work: Promise<void>, code?: Parameters<typeof toCdcError>[1]): void {
    this.holding = true;
    this.update();
    void work.then(
      () => {
        this.holding = false;
        this.released();
      },
      (error: unknown) => this.failed(toCdcError(error, code)),
    );
  }

  /** Pauses or resumes the stream to match the reasons to pause. */
  update(): void {
    const stream = this.stream;
    const pause = this.pressure || this.holding;
    if (!stream || pause === this.paused) return;
    this.paused = pause;
    if (pause) stream.pause();
    else stream.resume();
  }
}
