// Audit gaps: where the data is known to be incomplete, and how much was lost.
import { runQuery } from './api.js';
import { COLORS, timeChart } from './chart.js';
import { el, pager, resultTable, section, put } from './render.js';

export async function renderGaps(root, filters, search) {
  const offset = Number(search.get('_offset') ?? 0) || 0;
  const page = await runQuery('audit-gaps', filters, { rows: 100, offset });
  const byStart = [...page.rows].sort((a, b) => String(a.start_time).localeCompare(String(b.start_time)));
  put(
    root,
    el('h1', {}, 'Audit gaps'),
    el('p', { class: 'muted' }, 'Losses the system recorded: ring-buffer overflow, spool overflow, journal truncation, feed jumps. Other views mark rows within 60 s of these windows.'),
    timeChart('Records lost', byStart, 'start_time', [{ column: 'lost', label: 'lost', color: COLORS.lost }], { bars: true, yLabel: 'records' }),
    section('Gaps', resultTable(page, { empty: 'No known loss in this range.' }), pager(page)),
  );
}
