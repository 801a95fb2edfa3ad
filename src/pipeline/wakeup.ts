/**
 * How the stream loop's scheduler gets to run again: `soon` (after the current call stack, for something that
 * happened: a sink write or a checkpoint store completed) and `at` (the one timer, for the scheduler's next
 * deadline). Many calls before it runs cost one run; a timer armed for an earlier time is kept (firing early only
 * makes the scheduler look again and re-arm).
 */
export class Wakeup {
  private readonly run: () => void;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private queued = false;
  private closed = false;

  constructor(run: () => void) {
    this.run = run;
  }

  /** Runs `run` once the current call stack and its promise callbacks are done. */
  soon(): void {
    if (this.queued || this.closed) return;
    this.queued = true;
    setImmediate(() => {
      this.queued = false;
      if (!this.closed) this.run();
    });
  }

  /** Runs `run` at `at` (`Date.now()` ms) unless the timer is armed for then or earlier; `Infinity`: no timer. */
  at(at: number): void {
    if (this.closed || at === Infinity || (this.timer !== undefined && this.timerAt <= at)) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Infinity;
        if (!this.closed) this.run();
      },
      Math.max(0, at - Date.now()),
    );
  }

  /** Nothing runs after this. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
