import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../platform/atomic-file';

/** The last moment the host sensor is known to have been observing, as saved in the data directory. */
export interface Heartbeat {
  host: string;
  /** Wall-clock ns of the last beat: the sensor was attached at least until then. */
  lastUnixNano: string;
  /** True when the collector stopped cleanly (the last beat was written on stop). */
  clean: boolean;
}

/** A window in which the sensor did not observe the host: between the previous run's last beat and this run's start. */
export interface UnobservedWindow {
  startUnixNano: string;
  endUnixNano: string;
  /** How the previous run ended. */
  clean: boolean;
}

/**
 * The sensor's heartbeat, `<dataDir>/collector/heartbeat.json`: replaced atomically every `intervalMs`
 * while the sensor is attached, and once more on a clean stop. A collector that dies (kill -9, OOM,
 * power loss) leaves its last beat behind, so the next run knows from when to when the host's execs
 * and connects went unseen, and records that window as an audit gap instead of pretending it did
 * not happen. The window starts at the last beat, up to one interval before the real end: it may
 * over-state the loss, never under-state it.
 */
export class ObservationHeartbeat {
  readonly path: string;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    dataDir: string,
    private readonly host: string,
    /** A beat that cannot be written only widens the next window; it is reported, not fatal. */
    private readonly onError: (err: unknown) => void,
    private readonly intervalMs = 1000,
  ) {
    const dir = join(dataDir, 'collector');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, 'heartbeat.json');
  }

  /** The previous run's last beat on this host, or null (first run, or a file of another host). */
  previous(): Heartbeat | null {
    let parsed: Partial<Heartbeat>;
    try {
      parsed = JSON.parse(readFileSync(this.path, 'utf8')) as Partial<Heartbeat>;
    } catch {
      return null;
    }
    if (parsed.host !== this.host || typeof parsed.lastUnixNano !== 'string' || !/^\d+$/.test(parsed.lastUnixNano)) return null;
    return { host: parsed.host, lastUnixNano: parsed.lastUnixNano, clean: parsed.clean === true };
  }

  /**
   * The window since the previous run's last beat, up to `startedUnixNano` (null on a first run). Read
   * it before `start`: the first beat replaces the previous one, so the window must be recorded durably
   * first, or a crash right after this start would forget it.
   */
  unobservedUntil(startedUnixNano: bigint): UnobservedWindow | null {
    const previous = this.previous();
    if (!previous || BigInt(previous.lastUnixNano) >= startedUnixNano) return null;
    return { startUnixNano: previous.lastUnixNano, endUnixNano: startedUnixNano.toString(), clean: previous.clean };
  }

  /** Call once the sensor is attached (and the unobserved window recorded): beats every interval until `stop`. */
  start(startedUnixNano: bigint): void {
    this.beat(false, startedUnixNano);
    this.timer = setInterval(() => {
      try {
        this.beat(false);
      } catch (err) {
        this.onError(err);
      }
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Call once the sensor is detached: the last beat, marked clean. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.beat(true);
  }

  private beat(clean: boolean, nowUnixNano = BigInt(Date.now()) * 1_000_000n): void {
    const body: Heartbeat = { host: this.host, lastUnixNano: nowUnixNano.toString(), clean };
    writeFileAtomic(this.path, `${JSON.stringify(body)}\n`);
  }
}
