import { createTable, type Dialect, type TableSpec } from '../ddl';
import type { Migration } from '../migration';

/**
 * The gateway journal's own records, as the collector received them, so `gapwatch verify --gateway`
 * can check the store against the hash chain and the signed checkpoints the way it checks the journal
 * files. `record` is the whole record in the canonical encoding (gateway/journal/canonical-encoding.ts,
 * base64): everything needed to recompute `hash`. The other columns repeat fields of it for queries;
 * the verifier checks they agree with the bytes, so editing a column alone is found too.
 *
 * The sorting key (gateway_id, seq) is the record's id, so a redelivered record collapses into its
 * first copy. The verifier never reads this table with FINAL: FINAL (or a merge) keeps one row per key,
 * which would hide a replacement row inserted beside the original. Rows never expire (no TTL): this is
 * the evidence, and a chain with its start cut off cannot be anchored.
 */
export const JOURNAL_RECORDS: TableSpec = {
  name: 'journal_records',
  columns: [
    'gateway_id LowCardinality(String)',
    'seq UInt64',
    "time DateTime64(9, 'UTC')",
    // The oneof member of the body: session, event, checkpoint or gap.
    'body LowCardinality(String)',
    // 32-byte SHA-256 values as lowercase hex.
    'prev_hash String',
    'hash String',
    'record String',
    // For checkpoint records: the signed head (seq and hash), the ed25519 signature (hex) and the key id.
    'checkpoint_seq UInt64',
    'checkpoint_head_hash String',
    'checkpoint_signature String',
    'checkpoint_key_id LowCardinality(String)',
  ],
  orderBy: 'gateway_id, seq',
  shardingKey: 'cityHash64(gateway_id)',
  comment: 'gateway journal records with their hash chain and signed checkpoints; proto gapwatch.v1.JournalRecord',
};

export const journalRecords: Migration = {
  version: 4,
  name: 'journal records',
  statements(dialect: Dialect): string[] {
    return createTable(JOURNAL_RECORDS, dialect);
  },
};
