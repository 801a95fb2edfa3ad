/**
 * The engine's events fanned out to every listener that subscribed (the status tracker, later
 * metrics and a dashboard). The engine sees only `EngineEvents` (core/engine-events.ts).
 */
import type { EngineEvent, EngineEvents } from '../core/engine-events.ts';

export type EngineEventListener = (event: EngineEvent) => void;

export class EngineEventBus implements EngineEvents {
  private listeners: readonly EngineEventListener[] = [];
  private readonly onListenerError: (error: unknown, event: EngineEvent) => void;

  /** `onListenerError` hears a listener that threw (the event still reaches the others). */
  constructor(onListenerError: (error: unknown, event: EngineEvent) => void = () => undefined) {
    this.onListenerError = onListenerError;
  }

  /** Adds a listener; the function returned removes it. */
  subscribe(listener: EngineEventListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** Calls every listener in subscription order; never throws (the EngineEvents contract). */
  emit(event: EngineEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        try {
          this.onListenerError(error, event);
        } catch {
          // The error handler failed too: nothing is left to tell, and the engine must not see it.
        }
      }
    }
  }
}
