import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import { deterministicId, auditGapRow, sessionEventRow, sessionRow, type Row, type TableName } from '../store/rows';

/**
 * Gateway journal records as store rows: sessions (the closing record replaces the opening one),
 * their events, and the journal's own gaps as audit_gaps. Checkpoints stay in the journal.
 */
export function gatewayRecordRows(record: JournalRecord__Output): Array<{ table: TableName; row: Row }> {
  if (record.session) return [{ table: 'gateway_sessions', row: sessionRow(record.session) }];
  if (record.event) return [{ table: 'gateway_session_events', row: sessionEventRow(record.event) }];
  if (record.gap) {
    const gap = record.gap;
    return [
      {
        table: 'audit_gaps',
        row: auditGapRow({
          gapId: deterministicId('journal-gap', record.gatewayId, record.seq),
          host: record.gatewayId,
          source: 'journal',
          startUnixNano: record.timeUnixNano,
          endUnixNano: record.timeUnixNano,
          lost: gap.lastSeq !== '0' ? String(BigInt(gap.lastSeq) - BigInt(gap.firstSeq) + 1n) : '0',
          reason: `gateway ${record.gatewayId} journal ${String(gap.kind).replace('JOURNAL_GAP_KIND_', '').toLowerCase()}: seq ${gap.firstSeq}..${gap.lastSeq}, ${gap.bytes} bytes; ${gap.detail}`,
        }),
      },
    ];
  }
  return [];
}
