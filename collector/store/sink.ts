import { Readable } from 'node:stream';
import { qualified, quoteIdent } from './ddl';
import { OUTPUT_SETTINGS, type Store } from './connection';
import { migrate } from './migration';
import type { TableName } from './rows';

/**
 * Where the writer delivers batches: rows of one table as JSONCompactEachRow lines, values in the order of
 * `columns`. Throws when the batch was not stored.
 */
export interface InsertSink {
  insert(table: TableName, columns: readonly string[], body: Buffer, rows: number): Promise<void>;
}

/** Output settings mean nothing to an INSERT; an undefined setting is not sent at all. */
const UNSET_OUTPUT_SETTINGS = Object.fromEntries(Object.keys(OUTPUT_SETTINGS).map((key) => [key, undefined]));

/**
 * Delivers batches to a store through `@clickhouse/client`. The schema is brought up to date before the
 * first insert and again after any failure, so a server that was unreachable at start gets its tables
 * as soon as it answers.
 */
export function storeSink(store: Store): InsertSink {
  let migrated = false;
  return {
    async insert(table, columns, body) {
      if (!migrated) {
        await migrate(store.client, store.dialect);
        migrated = true;
      }
      try {
        if (store.insertRaw !== undefined) {
          await store.insertRaw(table, columns, body);
          return;
        }
        // The batch was serialised once, when it was cut; the same bytes go to the spool, so a replayed
        // batch is byte-identical to the first attempt. `insert` would re-encode JSON rows, so the bytes
        // are sent through `exec` with the statement naming the format.
        const result = await store.client.exec({
          query: `INSERT INTO ${qualified(store.dialect, table)} (${columns.map(quoteIdent).join(', ')}) FORMAT JSONCompactEachRow`,
          values: Readable.from([body], { objectMode: false }),
          clickhouse_settings: UNSET_OUTPUT_SETTINGS,
        });
        await drain(result.stream);
      } catch (err) {
        migrated = false;
        throw err;
      }
    },
  };
}

/** Reads a response to its end, so an HTTP connection goes back to the pool. */
async function drain(stream: NodeJS.ReadableStream): Promise<void> {
  for await (const chunk of stream) void chunk;
}
