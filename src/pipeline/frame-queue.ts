/**
 * The frames the stream loop received and has not processed yet, first in first out. Frames are processed as
 * they arrive unless something holds them (scheduler.ts), so the queue is usually empty or holds one; while
 * frames are held the stream is paused, which bounds it. Pushing and shifting reuse one array: no allocation per
 * frame once it has grown.
 */
export class FrameQueue {
  private readonly items: Buffer[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(frame: Buffer): void {
    this.items.push(frame);
  }

  /** The oldest frame. Only call when `size > 0`. */
  shift(): Buffer {
    const items = this.items;
    const frame = items[this.head] as Buffer;
    this.head++;
    if (this.head === items.length) {
      items.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= items.length) {
      // Mostly consumed: drop the consumed front so the array does not grow without bound.
      items.splice(0, this.head);
      this.head = 0;
    }
    return frame;
  }
}
