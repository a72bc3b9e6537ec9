import { encodeRecord } from '../../gateway/journal/canonical-encoding';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import { dateTime64 } from '../store/time';
import { auditGapRow, sessionEventRow, sessionRow, type Row, type TableName } from '../store/rows';

export interface TableRow {
  table: TableName;
  row: Row;
}

/**
 * A gateway journal record as store rows. Sessions and session events carry their own ids
 * (session_id; session_id + event_seq), so a record delivered twice becomes the same row twice and
 * collapses. A journal gap (records the gateway itself lost or removed) becomes an audit_gaps row;
 * checkpoints are the journal's own evidence and stay in the journal.
 */
export function journalRecordRows(record: JournalRecord__Output): TableRow[] {
  switch (record.body) {
    case 'session':
      return [{ table: 'gateway_sessions', row: sessionRow(record.session!) }];
    case 'event':
      return [{ table: 'gateway_session_events', row: sessionEventRow(record.event!) }];
    case 'gap': {
      const gap = record.gap!;
      const first = BigInt(gap.firstSeq);
      const last = BigInt(gap.lastSeq);
      return [
        {
          table: 'audit_gaps',
          row: auditGapRow({
            gapId: `journal:${record.gatewayId}:${record.seq}`,
            host: record.gatewayId,
            source: 'gateway-journal',
            startUnixNano: record.timeUnixNano,
            endUnixNano: record.timeUnixNano,
            lost: last >= first && last > 0n ? String(last - first + 1n) : '0',
            reason: `gateway ${record.gatewayId} journal ${gap.kind.replace('JOURNAL_GAP_KIND_', '').toLowerCase()}: seq ${gap.firstSeq}..${gap.lastSeq === '0' ? '?' : gap.lastSeq}, ${gap.bytes} bytes${gap.segment ? ` in ${gap.segment}` : ''}${gap.preservedAs ? `, kept as ${gap.preservedAs}` : ''}${gap.detail ? `: ${gap.detail}` : ''}`,
          }),
        },
      ];
    }
    default:
      return [];
  }
}

/** Records the subscriber knows it did not receive (a jump in seq) as an audit_gaps row. */
export function missedRecordsRow(gatewayId: string, firstSeq: bigint, lastSeq: bigint, timeUnixNano: string): TableRow {
  return {
    table: 'audit_gaps',
    row: auditGapRow({
      gapId: `feed:${gatewayId}:${firstSeq}-${lastSeq}`,
      host: gatewayId,
      source: 'gateway-feed',
      startUnixNano: timeUnixNano,
      endUnixNano: timeUnixNano,
      lost: String(lastSeq - firstSeq + 1n),
      reason: `gateway ${gatewayId} sent seq ${lastSeq + 1n} after ${firstSeq - 1n}: records ${firstSeq}..${lastSeq} never arrived`,
    }),
  };
}

/**
 * The record itself for the journal_records table (migrations/0004-journal-records.ts): its canonical
 * encoding, from which `gapwatch verify --gateway` recomputes the hash chain, and its chain fields and
 * checkpoint as columns. Every record gets one, checkpoints and gaps included.
 */
export function journalRecordRow(record: JournalRecord__Output): TableRow {
  const checkpoint = record.body === 'checkpoint' ? record.checkpoint : null;
  return {
    table: 'journal_records',
    row: {
      gateway_id: record.gatewayId,
      seq: record.seq,
      time: dateTime64(record.timeUnixNano),
      body: record.body ?? '',
      prev_hash: Buffer.from(record.prevHash).toString('hex'),
      hash: Buffer.from(record.hash).toString('hex'),
      record: encodeRecord(record).toString('base64'),
      checkpoint_seq: checkpoint?.seq ?? '0',
      checkpoint_head_hash: checkpoint ? Buffer.from(checkpoint.headHash).toString('hex') : '',
      checkpoint_signature: checkpoint ? Buffer.from(checkpoint.signature).toString('hex') : '',
      checkpoint_key_id: checkpoint?.keyId ?? '',
    },
  };
}
