import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { loadConfig, type Config } from '../../platform/config';
import { GapwatchError } from '../../platform/errors';
import type { Logger } from '../../platform/log';
import type { Inventory } from './inventory';

type Resources = Config['collector']['resources'];

export interface ReloadOutcome {
  /** `reloaded`: the inventory has the new resources; `unchanged`: the file changed elsewhere; `refused`: invalid, the old ones stay. */
  result: 'reloaded' | 'unchanged' | 'refused';
  /** What prompted it: "file changed" or "SIGHUP". */
  why: string;
  resources: string[];
  error?: string;
}

/**
 * Rebuilds the correlation inventory from `collector.resources` when the configuration file changes
 * (watched) or on SIGHUP. The whole file is validated as at start: an invalid file changes nothing,
 * and the error says what is wrong and that the previous resources stay in force. Other sections are
 * read but not applied (they need a restart); only the protected resources reload.
 *
 * The directory is watched, not the file: editors and config managers replace a file by renaming a
 * new one over it, after which a watch on the old inode hears nothing.
 */
export class ResourceReloader {
  private watcher: FSWatcher | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private current: string;
  private running: Promise<ReloadOutcome> | null = null;
  private readonly onHangup = (): void => void this.reload('SIGHUP');
  readonly outcomes: Array<(outcome: ReloadOutcome) => void> = [];

  constructor(
    private readonly file: string,
    private readonly inventory: Inventory,
    resources: Resources,
    private readonly log: Logger,
    private readonly debounceMs = 200,
  ) {
    this.current = JSON.stringify(resources);
  }

  start(): void {
    if (this.watcher) return;
    const name = basename(this.file);
    this.watcher = watch(dirname(this.file), (_event, changed) => {
      if (changed !== null && changed !== name) return;
      // One save is several events (truncate, write, rename); read the file once they have settled.
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => void this.reload('file changed'), this.debounceMs);
      this.debounce.unref();
    });
    this.watcher.on('error', (err) => this.log.error({ err, file: this.file }, 'cannot watch the configuration file any more; send SIGHUP to reload resources'));
    this.watcher.unref();
    process.on('SIGHUP', this.onHangup);
  }

  stop(): void {
    process.removeListener('SIGHUP', this.onHangup);
    this.watcher?.close();
    this.watcher = null;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = null;
  }

  /** Reads the file and, when it is valid and its resources differ, rebuilds the inventory from them. */
  reload(why: string): Promise<ReloadOutcome> {
    // Reloads run one after another, so the inventory ends with the file's last state.
    const previous = this.running ?? Promise.resolve(null);
    const next = previous.then(() => this.apply(why));
    this.running = next;
    return next;
  }

  private async apply(why: string): Promise<ReloadOutcome> {
    let outcome: ReloadOutcome;
    try {
      const { config } = loadConfig(this.file);
      const resources = config.collector.resources;
      const text = JSON.stringify(resources);
      if (text === this.current) {
        outcome = { result: 'unchanged', why, resources: resources.map((r) => r.name) };
      } else {
        await this.inventory.setConfigured(resources);
        this.current = text;
        outcome = { result: 'reloaded', why, resources: resources.map((r) => r.name) };
        this.log.info({ file: this.file, why, resources: outcome.resources }, `protected resources reloaded from ${this.file}: ${outcome.resources.join(', ') || 'none'}`);
      }
    } catch (err) {
      const detail = err instanceof GapwatchError ? err.message : (err as Error).message;
      outcome = { result: 'refused', why, resources: JSON.parse(this.current).map((r: { name: string }) => r.name), error: detail };
      this.log.error(
        { file: this.file, why, code: (err as GapwatchError).code },
        `configuration reload refused, the previous protected resources stay in force (${outcome.resources.join(', ') || 'none'}): ${detail}`,
      );
    }
    for (const listener of this.outcomes) listener(outcome);
    return outcome;
  }
}
