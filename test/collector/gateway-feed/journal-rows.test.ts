import { strict as assert } from 'node:assert';
import { journalRecordRows, missedRecordsRow } from '../../../collector/gateway-feed/journal-rows';
import { openStore, type Store } from '../../../collector/store/connection';
import { qualified } from '../../../collector/store/ddl';
import { storeSink } from '../../../collector/store/sink';
import { encodeRows, TABLE_COLUMNS } from '../../../collector/store/rows';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import { queryRows, tempConfig } from '../store/store-fixture';

const NOW = (BigInt(Date.now() - 60_000) * 1_000_000n).toString();

function record(seq: number, body: Partial<JournalRecord__Output>): JournalRecord__Output {
  return { gatewayId: 'gw-a', seq: String(seq), prevHash: Buffer.alloc(32), hash: Buffer.alloc(32), timeUnixNano: NOW, ...body } as JournalRecord__Output;
}

function event(seq: number, detail: Record<string, unknown>): JournalRecord__Output {
  return record(seq, { body: 'event', event: { sessionId: 's-1', eventSeq: String(seq), timeUnixNano: NOW, ...detail } as never });
}

describe('collector/gateway-feed: journal records as store rows', function () {
  this.timeout(60_000);
  let store: Store | null = null;
  after(async () => {
    await store?.close();
  });

  it('stores every event kind the PostgreSQL gateway journals, journal gaps, and nothing for checkpoints', async () => {
    const records = [
      event(1, { detail: 'pgRequest', pgRequest: { messages: [{ type: 'Parse', text: 'SELECT $1', parameters: [] }, { type: 'Bind', text: '', parameters: [{ value: 'text', text: '42' }, { value: 'redacted', redacted: true }] }] } }),
      event(2, { detail: 'copy', copy: { direction: 'out', rows: '3', bytes: '120', statement: 'COPY t TO STDOUT', errorCode: '', errorMessage: '' } }),
      event(3, { detail: 'policy', policy: { action: 'POLICY_ACTION_REVIEW', rule: 'ddl-needs-review', reviewer: '', reason: 'held', reviewId: 'r1', statement: 'DROP TABLE t', classes: [] } }),
      event(4, { detail: 'policy', policy: { action: 'POLICY_ACTION_TIMED_OUT', rule: 'ddl-needs-review', reviewer: '', reason: 'no decision', reviewId: 'r1', statement: 'DROP TABLE t', classes: [] } }),
      record(5, { body: 'gap', gap: { kind: 'JOURNAL_GAP_KIND_RETENTION', firstSeq: '1', lastSeq: '100', bytes: '4096', segment: 'x.seg', offset: '0', preservedAs: '', detail: '' } as never }),
      record(6, { body: 'checkpoint', checkpoint: { seq: '5', headHash: Buffer.alloc(32), signature: Buffer.alloc(64), keyId: 'k' } as never }),
    ];
    const rows = records.flatMap(journalRecordRows);
    assert.deepEqual(rows.map((r) => r.table), ['gateway_session_events', 'gateway_session_events', 'gateway_session_events', 'gateway_session_events', 'audit_gaps']);
    assert.equal(rows[0]!.row.statement_text, 'SELECT $1');
    assert.deepEqual(rows[0]!.row.statement_parameters, ['42', '[redacted]']);
    rows.push(missedRecordsRow('gw-a', 7n, 9n, NOW));

    const config = tempConfig();
    store = await openStore(config);
    const sink = storeSink(store);
    for (const table of ['gateway_session_events', 'audit_gaps'] as const) {
      const list = rows.filter((r) => r.table === table).map((r) => r.row);
      await sink.insert(table, TABLE_COLUMNS[table], encodeRows(table, list), list.length);
    }
    const events = await queryRows<{ kind: string; policy_action: string; copy_direction: string; copy_bytes: string; rows: string }>(
      store,
      `SELECT toString(kind) AS kind, toString(policy_action) AS policy_action, copy_direction, copy_bytes, rows FROM ${qualified(store.dialect, 'gateway_session_events')} FINAL ORDER BY event_seq`,
    );
    assert.deepEqual(
      events.map((e) => [e.kind, e.policy_action, e.copy_direction, String(e.copy_bytes), String(e.rows)]),
      [
        ['pg_request', 'unspecified', '', '0', '0'],
        ['copy', 'unspecified', 'out', '120', '3'],
        ['policy', 'review', '', '0', '0'],
        ['policy', 'timed_out', '', '0', '0'],
      ],
    );
    const gaps = await queryRows<{ source: string; lost: string; reason: string }>(store, `SELECT source, lost, reason FROM ${qualified(store.dialect, 'audit_gaps')} FINAL ORDER BY source`);
    assert.deepEqual(gaps.map((g) => [g.source, String(g.lost)]), [['gateway-feed', '3'], ['gateway-journal', '100']]);
    assert.match(gaps[1]!.reason, /journal retention: seq 1\.\.100/);
  });
});
