import { serialize } from 'pg-protocol';
import type { BackendMessage, DataRowMessage, DatabaseError } from 'pg-protocol/dist/messages';
import { Parser } from 'pg-protocol/dist/parser';
import type { PostgresResourceConfig } from '../../platform/config';
import type { Logger } from '../../platform/log';
import { connectUpstream, type UpstreamSession } from './upstream-connect';

/** OIDs can be reused after DROP TABLE; names are looked up again after this long. */
const TTL_MS = 60_000;

/**
 * Names the tables that result columns come from ("schema.table" for a RowDescription's table OID),
 * so table-qualified mask rules apply to the right table. Lookups go over one catalog connection per
 * resource that the gateway opens with the resource's credentials; they read pg_class only and are
 * the gateway's own, not an agent's, so they are not journaled. A failed lookup leaves the columns
 * unresolved, which the policy layer treats as "could be any table" (fail closed).
 */
export class RelationNames {
  private readonly cache = new Map<number, { name: string; at: number }>();
  private connection: Promise<UpstreamSession> | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly resource: PostgresResourceConfig,
    private readonly log: Logger,
  ) {}

  /** Cached names only, without waiting; undefined for OIDs not looked up yet (or expired). */
  known(oid: number): string | undefined {
    const entry = this.cache.get(oid);
    return entry && Date.now() - entry.at < TTL_MS ? entry.name : undefined;
  }

  /** Looks up the OIDs not cached; resolves with what is known afterwards (never rejects). */
  async resolve(oids: readonly number[]): Promise<void> {
    const missing = [...new Set(oids)].filter((oid) => oid !== 0 && this.known(oid) === undefined);
    if (missing.length === 0) return;
    const work = this.queue.then(() => this.lookup(missing));
    this.queue = work.catch(() => undefined);
    try {
      await work;
    } catch (err) {
      this.log.warn({ err, resource: this.resource.name }, 'could not look up result table names; table-qualified mask rules apply to every table');
      this.close();
    }
  }

  close(): void {
    const connection = this.connection;
    this.connection = null;
    void connection?.then((c) => c.socket.destroy(), () => undefined);
  }

  private async lookup(oids: number[]): Promise<void> {
    if (!this.connection) {
      const connecting = connectUpstream(this.resource, new Map([['application_name', 'gapwatch-catalog']])).then((session) => {
        session.socket.on('error', () => undefined);
        session.socket.once('close', () => {
          if (this.connection === connecting) this.connection = null;
        });
        return session;
      });
      this.connection = connecting;
    }
    const session = await this.connection;
    // OIDs are integers from the server's own RowDescription, so the literal list is safe to inline.
    const sql = `SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid IN (${oids.map((o) => String(o >>> 0)).join(',')})`;
    const rows = await new Promise<string[][]>((resolve, reject) => {
      const parser = new Parser();
      const out: string[][] = [];
      let error: DatabaseError | null = null;
      const cleanup = (): void => {
        session.socket.removeListener('data', onData);
        session.socket.removeListener('close', onClose);
      };
      const onMessage = (msg: BackendMessage): void => {
        if (msg.name === 'dataRow') out.push((msg as DataRowMessage).fields as string[]);
        else if (msg.name === 'error') error = msg as DatabaseError;
        else if (msg.name === 'readyForQuery') {
          cleanup();
          if (error) reject(error);
          else resolve(out);
        }
      };
      const onData = (chunk: Buffer): void => parser.parse(chunk, onMessage);
      const onClose = (): void => {
        cleanup();
        reject(new Error('the catalog connection closed'));
      };
      session.socket.on('data', onData);
      session.socket.on('close', onClose);
      session.socket.write(serialize.query(sql));
    });
    const at = Date.now();
    for (const [oid, schema, table] of rows) this.cache.set(Number(oid), { name: `${schema}.${table}`, at });
  }
}
