// Agent runs: the runs that reached protected resources, and one run's timeline.
import { runQuery } from './api.js';
import { COLORS, timeChart } from './chart.js';
import { el, epochSeconds, isTrue, link, pager, resultTable, section, put } from './render.js';

const PAGE_ROWS = 200;

export async function renderRuns(root, filters, search) {
  const agentRun = search.get('agent_run');
  const offset = Number(search.get('_offset') ?? 0) || 0;
  if (!agentRun) {
    const page = await runQuery('coverage', { ...filters, group_by: 'agent_run' }, { rows: 50, offset });
    put(
    root,
      el('h1', {}, 'Agent runs'),
      el('p', { class: 'muted' }, 'Agent runs with connects to protected resources, most bypasses first. Pick one for its timeline.'),
      runTable(page),
      pager(page),
    );
    return;
  }
  const page = await runQuery('agent-run-timeline', { ...filters, agent_run: agentRun }, { rows: PAGE_ROWS, offset });
  put(
    root,
    el('p', {}, link('/runs', { agent_run: null, _offset: null }, '← all agent runs')),
    el('h1', {}, 'Agent run ', el('code', {}, agentRun)),
    page.rows.some((r) => isTrue(r.gap_overlap)) ? el('p', { class: 'warning' }, '⚠ Part of this timeline is within 60 s of an audit gap (marked rows): events there may be missing.') : null,
    timeChart('Activity of this run', activityBuckets(page.rows), 'time', [
      { column: 'process', label: 'process events', color: COLORS.process },
      { column: 'mediated', label: 'mediated connects', color: COLORS.mediated },
      { column: 'bypass', label: 'bypass connects', color: COLORS.bypass },
      { column: 'gateway', label: 'gateway events', color: COLORS.session },
    ], { bars: true, yLabel: 'events' }),
    section('Timeline', resultTable(page, { empty: 'Nothing recorded for this run in the range.' }), pager(page)),
  );
}

/** The coverage query grouped by agent run names its key group_key; the link goes to the timeline. */
function runTable(page) {
  const renamed = { ...page, columns: page.columns.map((c) => (c.name === 'group_key' ? { ...c, name: 'agent_run' } : c)), rows: page.rows.map((r) => ({ ...r, agent_run: r.group_key })) };
  return resultTable(renamed, { empty: 'No agent run reached a protected resource in this range.' });
}

/** Counts per bucket of the rows on this page (at most PAGE_ROWS), about 40 buckets over their span. */
function activityBuckets(rows) {
  if (rows.length === 0) return [];
  const times = rows.map((r) => epochSeconds(r.time));
  const first = Math.min(...times);
  const span = Math.max(...times) - first;
  const width = Math.max(1, Math.ceil(span / 40));
  const buckets = new Map();
  rows.forEach((row, i) => {
    const start = first + Math.floor((times[i] - first) / width) * width;
    const bucket = buckets.get(start) ?? { process: 0, mediated: 0, bypass: 0, gateway: 0 };
    if (row.what === 'process') bucket.process++;
    else if (row.what === 'gateway') bucket.gateway++;
    else if (row.verdict === 'bypass') bucket.bypass++;
    else if (row.verdict === 'mediated') bucket.mediated++;
    buckets.set(start, bucket);
  });
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([start, counts]) => ({ time: new Date(start * 1000).toISOString().replace('T', ' ').replace('Z', ''), ...counts }));
}
