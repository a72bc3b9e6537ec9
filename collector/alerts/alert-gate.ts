import type { CollectorAlert } from './alert';

export interface AlertGateOptions {
  dedupWindowMs: number;
  maxPerMinute: number;
  /** Bound on the keys remembered; beyond it the oldest are flushed and forgotten. */
  maxKeys?: number;
}

interface KeyState {
  emittedAtMs: number;
  /** Occurrences not yet reported, folded into one alert (the first of them, with the count). */
  folded: CollectorAlert | null;
}

/**
 * De-duplication and rate limiting that never loses the count. The first alert of a key goes out at
 * once; the same key again within dedupWindowMs is folded (count + 1, last time updated) and reported
 * as one alert when the window ends. Above maxPerMinute (a token bucket refilled continuously) new
 * keys are folded as well, and go out as the budget returns. close() reports everything still folded.
 */
export class AlertGate {
  private readonly keys = new Map<string, KeyState>();
  private tokens: number;
  private refilledAtMs: number;
  private timer: NodeJS.Timeout | null = null;
  suppressed = 0;

  constructor(
    private readonly options: AlertGateOptions,
    private readonly emit: (alert: CollectorAlert) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = options.maxPerMinute;
    this.refilledAtMs = now();
  }

  start(tickMs = 250): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

  raise(key: string, alert: CollectorAlert): void {
    const now = this.now();
    const state = this.keys.get(key);
    if (state && (now - state.emittedAtMs < this.options.dedupWindowMs || state.folded !== null)) {
      this.fold(state, alert);
      return;
    }
    if (!this.take(now)) {
      const held: KeyState = state ?? { emittedAtMs: -Infinity, folded: null };
      this.fold(held, alert);
      this.remember(key, held);
      return;
    }
    this.remember(key, { emittedAtMs: now, folded: null });
    this.emit(alert);
  }

  /** Reports folded alerts whose window has ended (budget permitting) and forgets idle keys. */
  tick(): void {
    const now = this.now();
    for (const [key, state] of this.keys) {
      if (now - state.emittedAtMs < this.options.dedupWindowMs) continue;
      if (state.folded === null) {
        this.keys.delete(key);
        continue;
      }
      if (!this.take(now)) return;
      this.emit(state.folded);
      state.folded = null;
      state.emittedAtMs = now;
    }
  }

  /** Everything folded goes out now, budget or not: a count is never lost. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const state of this.keys.values()) if (state.folded) this.emit(state.folded);
    this.keys.clear();
  }

  private fold(state: KeyState, alert: CollectorAlert): void {
    this.suppressed++;
    if (state.folded === null) {
      state.folded = { ...alert, count: alert.count };
      return;
    }
    state.folded.count += alert.count;
    state.folded.lastTimeUnixNano = alert.lastTimeUnixNano;
  }

  private remember(key: string, state: KeyState): void {
    this.keys.delete(key);
    this.keys.set(key, state);
    const max = this.options.maxKeys ?? 100_000;
    while (this.keys.size > max) {
      const [oldest, old] = this.keys.entries().next().value as [string, KeyState];
      this.keys.delete(oldest);
      if (old.folded) this.emit(old.folded);
    }
  }

  private take(now: number): boolean {
    const perMs = this.options.maxPerMinute / 60_000;
    this.tokens = Math.min(this.options.maxPerMinute, this.tokens + (now - this.refilledAtMs) * perMs);
    this.refilledAtMs = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
