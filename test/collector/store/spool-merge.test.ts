import assert from 'node:assert/strict';
import { mergeBatches, type SpoolBatch } from '../../../collector/store/spool';
import type { TableName } from '../../../collector/store/rows';

function batch(table: TableName, ids: number[], columns = ['id']): SpoolBatch {
  return {
    table,
    columns,
    rows: ids.length,
    minTime: `2026-01-01 00:00:0${ids[0]}.000000000`,
    maxTime: `2026-01-01 00:00:0${ids[ids.length - 1]}.000000000`,
    body: Buffer.from(ids.map((id) => `[${id}]\n`).join('')),
  };
}

describe('collector/store: spool replay merges small batches', () => {
  it('merges batches of a table up to the row bound, keeping each table in order', () => {
    const out = [...mergeBatches([batch('connect_events', [1, 2]), batch('alerts', [1]), batch('connect_events', [3]), batch('connect_events', [4, 5]), batch('alerts', [2])], 3)];
    assert.deepEqual(
      out.map((b) => [b.table, b.rows, b.body.toString(), b.minTime.slice(-11, -10), b.maxTime.slice(-11, -10)]),
      [
        ['connect_events', 3, '[1]\n[2]\n[3]\n', '1', '3'],
        ['connect_events', 2, '[4]\n[5]\n', '4', '5'],
        ['alerts', 2, '[1]\n[2]\n', '1', '2'],
      ],
    );
  });

  it('never merges batches spooled with different column lists', () => {
    const out = [...mergeBatches([batch('gateway_sessions', [1], ['a']), batch('gateway_sessions', [2], ['a', 'b'])], 100)];
    assert.deepEqual(out.map((b) => [b.rows, b.columns.join(',')]), [
      [1, 'a'],
      [1, 'a,b'],
    ]);
  });
});
