import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../platform/log';
import type { AuditClient } from '../../proto/generated/gapwatch/v1/Audit';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { ResourcesResponse__Output } from '../../proto/generated/gapwatch/v1/ResourcesResponse';
import type { StoreWriter } from '../store/writer';
import { createAuditClient } from './audit-client';
import type { GatewayFeedEntry, GatewayFeedTuning } from './config-schema';
import { GatewayIdentityChangedError } from './errors';
import { journalRecordRow, journalRecordRows, missedRecordsRow, type TableRow } from './journal-rows';
import { PositionFile } from './position-file';

/** What the subscriber needs from the store: rows in (with back-pressure), and a flush that makes them safe. */
export type FeedWriter = Pick<StoreWriter, 'write' | 'flush'>;

export interface GatewaySubscriberOptions {
  entry: GatewayFeedEntry;
  dataDir: string;
  writer: FeedWriter;
  tuning: GatewayFeedTuning;
  log: Logger;
  onRecord: (record: JournalRecord__Output) => void;
  onResources: (resources: ResourcesResponse__Output) => void;
}

export interface GatewaySubscriberStats {
  address: string;
  gatewayId: string;
  connected: boolean;
  /** Last seq whose rows the store writer has accepted. */
  handedSeq: string;
  /** Last seq saved durably (its rows flushed to the store or the spool first). */
  committedSeq: string;
  received: number;
  /** Records at or below the position, received again after a reconnect and skipped. */
  duplicates: number;
  connects: number;
  /** Records the gateway skipped over (recorded in audit_gaps). */
  missed: number;
  lastError: string;
}

/**
 * One gateway's Audit subscription: ListResources, then Subscribe from the saved position + 1, each
 * record's rows handed to the store writer (awaiting its back-pressure, so a slow store slows the
 * stream, which slows the gateway's reader: nothing queues here), then to the feed's listeners.
 *
 * Exactly once in the store: the position is saved (fsync'd) only after `writer.flush()` has put every
 * row up to it in the store or the durable spool. After a crash the records since the last save come
 * again; their rows have deterministic ids and collapse with the first copies. Within one run, records
 * at or below the position are skipped, so listeners see each record once; after a crash, listeners
 * may see the records since the last save again.
 *
 * A cut connection, a gateway restart or an error reconnects with exponential back-off; a gateway
 * that is not the one the position belongs to stops this subscription (GatewayIdentityChangedError).
 */
export class GatewaySubscriber {
  private readonly position: PositionFile;
  private gatewayId: string;
  private handedSeq: bigint;
  private committedSeq: bigint;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  private commitTimer: NodeJS.Timeout | null = null;
  private resourcesTimer: NodeJS.Timeout | null = null;
  private committing: Promise<void> = Promise.resolve();
  private client: AuditClient | null = null;
  private call: grpc.ClientReadableStream<JournalRecord__Output> | null = null;
  private lastResources = '';
  private readonly counters = { connected: false, received: 0, duplicates: 0, connects: 0, missed: 0, lastError: '' };
  /** Set when the subscription stopped for a reason a reconnect cannot fix. */
  failure: Error | null = null;

  constructor(private readonly options: GatewaySubscriberOptions) {
    this.position = new PositionFile(options.dataDir, options.entry.address);
    const saved = this.position.load();
    this.gatewayId = saved.gatewayId;
    this.handedSeq = saved.lastSeq;
    this.committedSeq = saved.lastSeq;
  }

  get address(): string {
    return this.options.entry.address;
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
    this.commitTimer = setInterval(() => void this.commit().catch((err: unknown) => this.options.log.error({ err, address: this.address }, 'could not save the audit stream position')), this.options.tuning.commitIntervalMs);
    this.commitTimer.unref();
  }

  /** Ends the stream, waits for the records in hand to reach the writer, and saves the position. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.call?.cancel();
    if (this.commitTimer) clearInterval(this.commitTimer);
    if (this.resourcesTimer) clearInterval(this.resourcesTimer);
    this.commitTimer = null;
    this.resourcesTimer = null;
    await this.loop;
    this.loop = null;
    await this.commit();
  }

  stats(): GatewaySubscriberStats {
    return {
      address: this.address,
      gatewayId: this.gatewayId,
      handedSeq: this.handedSeq.toString(),
      committedSeq: this.committedSeq.toString(),
      ...this.counters,
    };
  }

  /** Makes the position durable up to what the writer has: flush first, then save. One at a time. */
  commit(): Promise<void> {
    this.committing = this.committing.then(async () => {
      const seq = this.handedSeq;
      if (seq <= this.committedSeq) return;
      await this.options.writer.flush();
      this.position.save({ address: this.address, gatewayId: this.gatewayId, lastSeq: seq });
      this.committedSeq = seq;
    });
    return this.committing;
  }

  private async run(): Promise<void> {
    const { log, tuning } = this.options;
    let attempt = 0;
    while (!this.abort.signal.aborted) {
      try {
        this.client = createAuditClient(this.options.entry);
        await this.refreshResources();
        this.counters.connects++;
        this.counters.connected = true;
        const received = await this.follow();
        if (received > 0) attempt = 0;
        if (!this.abort.signal.aborted) log.info({ address: this.address }, 'audit stream ended by the gateway; reconnecting');
      } catch (err) {
        if (this.abort.signal.aborted) break;
        if (err instanceof GatewayIdentityChangedError) {
          this.failure = err;
          this.counters.lastError = err.message;
          log.error({ err, address: this.address }, 'gateway subscription stopped');
          break;
        }
        this.counters.lastError = (err as Error).message;
        log.warn({ address: this.address, err: (err as Error).message, attempt }, 'audit stream unavailable; reconnecting');
      } finally {
        this.counters.connected = false;
        if (this.resourcesTimer) clearInterval(this.resourcesTimer);
        this.resourcesTimer = null;
        this.call = null;
        this.client?.close();
        this.client = null;
      }
      await sleep(Math.min(tuning.reconnectMaxMs, tuning.reconnectBaseMs * 2 ** Math.min(attempt, 16)), this.abort.signal);
      attempt++;
    }
  }

  private listResources(): Promise<ResourcesResponse__Output> {
    const client = this.client!;
    return new Promise((resolve, reject) =>
      client.listResources({}, { deadline: Date.now() + 10_000 }, (err, response) => (err || !response ? reject(err ?? new Error('no response')) : resolve(response))),
    );
  }

  private async refreshResources(): Promise<void> {
    const resources = await this.listResources();
    if (this.gatewayId !== '' && resources.gatewayId !== this.gatewayId) throw new GatewayIdentityChangedError(this.address, this.gatewayId, resources.gatewayId);
    this.gatewayId = resources.gatewayId;
    const text = JSON.stringify(resources);
    if (text === this.lastResources) return;
    this.lastResources = text;
    try {
      this.options.onResources(resources);
    } catch (err) {
      this.options.log.error({ err, address: this.address }, 'a resources listener failed');
    }
  }

  /** One Subscribe call from the position; returns the number of new records when the stream ends. */
  private async follow(): Promise<number> {
    const { log, writer, tuning } = this.options;
    const call = this.client!.subscribe({ fromSeq: (this.handedSeq + 1n).toString() });
    this.call = call;
    if (this.abort.signal.aborted) call.cancel();
    this.resourcesTimer = setInterval(() => {
      this.refreshResources().catch((err: unknown) => log.debug({ err: (err as Error).message, address: this.address }, 'resource refresh failed'));
    }, tuning.resourcesIntervalMs);
    this.resourcesTimer.unref();
    let fresh = 0;
    try {
      // Async iteration reads one record at a time: while a record's rows wait for the writer, the
      // stream is not read, so HTTP/2 flow control holds the gateway back.
      for await (const value of call) {
        const record = value as JournalRecord__Output;
        this.counters.received++;
        const seq = BigInt(record.seq);
        if (seq <= this.handedSeq) {
          this.counters.duplicates++;
          continue;
        }
        if (record.gatewayId !== this.gatewayId) throw new GatewayIdentityChangedError(this.address, this.gatewayId, record.gatewayId);
        const rows: TableRow[] = [];
        if (seq !== this.handedSeq + 1n) {
          this.counters.missed += Number(seq - this.handedSeq - 1n);
          rows.push(missedRecordsRow(this.gatewayId, this.handedSeq + 1n, seq - 1n, record.timeUnixNano));
          log.error({ address: this.address, expected: (this.handedSeq + 1n).toString(), got: record.seq }, 'gateway skipped records; recorded in audit_gaps');
        }
        rows.push(...journalRecordRows(record), journalRecordRow(record));
        for (const { table, row } of rows) await writer.write(table, row);
        this.handedSeq = seq;
        fresh++;
        try {
          this.options.onRecord(record);
        } catch (err) {
          log.error({ err, address: this.address, seq: record.seq }, 'a record listener failed');
        }
      }
    } catch (err) {
      if (this.abort.signal.aborted && (err as grpc.ServiceError).code === grpc.status.CANCELLED) return fresh;
      throw err;
    }
    return fresh;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
