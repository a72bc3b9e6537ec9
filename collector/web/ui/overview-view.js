// Overview: coverage, bypass count and its trend, top offenders.
import { runQuery } from './api.js';
import { barChart, COLORS, timeChart } from './chart.js';
import { el, errorBox, formatNumber, href, isTrue, put, resultTable, section } from './render.js';

/** About 48 buckets over the range, in whole minutes. */
function bucketSeconds(filters) {
  const match = /^(\d+)(s|m|h|d)$/.exec(filters.from);
  const seconds = match ? Number(match[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[match[2]] : 86400;
  return Math.max(60, Math.round(seconds / 48 / 60) * 60);
}

function card(label, value, detail, options = {}) {
  return el('div', { class: `card ${options.class ?? ''}`, 'data-card': options.id ?? label }, el('div', { class: 'card-label' }, label), el('div', { class: 'card-value' }, value), detail ? el('div', { class: 'card-detail' }, detail) : null);
}

/**
 * The page is laid out at once and each part fills in when its query answers: on a big store the
 * cards should not wait for the slowest top-offender table. A failed query shows its error in its place.
 */
function slot(root, make, promise) {
  const placeholder = el('div', { class: 'muted loading' }, 'Loading…');
  put(root, placeholder);
  return promise.then(
    (page) => placeholder.replaceWith(...[make(page)].flat().filter(Boolean)),
    (err) => placeholder.replaceWith(errorBox(err)),
  );
}

export async function renderOverview(root, filters) {
  const summary = runQuery('overview', filters, { rows: 1, offset: 0 });
  const trend = runQuery('coverage-trend', { ...filters, bucket_s: bucketSeconds(filters) }, { rows: 1000, offset: 0 });
  const runs = runQuery('bypass-by-agent-run', filters, { rows: 10, offset: 0 });
  const binaries = runQuery('bypass-by-binary', filters, { rows: 10, offset: 0 });
  const hosts = runQuery('bypass-by-host', filters, { rows: 10, offset: 0 });
  const resources = runQuery('coverage', { ...filters, group_by: 'resource' }, { rows: 20, offset: 0 });
  put(root, el('h1', {}, 'Overview'));
  const top = el('div');
  const charts = el('div', { class: 'charts' });
  const tables = el('div');
  put(root, top, charts, tables);
  await Promise.all([
    slot(top, (page) => summaryCards(page.rows[0] ?? {}), summary),
    slot(
      charts,
      (page) => [
        timeChart('Connects to protected resources', page.rows, 'time', [
          { column: 'mediated', label: 'mediated', color: COLORS.mediated },
          { column: 'bypass', label: 'bypass', color: COLORS.bypass },
        ], { bars: true, yLabel: 'connects' }),
        timeChart('Coverage %', page.rows, 'time', [{ column: 'coverage_pct', label: 'coverage %', color: COLORS.mediated }], { percent: true, yLabel: '%' }),
      ],
      trend,
    ),
    slot(charts, (page) => barChart('Coverage by resource', page.rows.map((r) => r.group_key), [{ label: 'coverage %', color: COLORS.mediated, values: page.rows.map((r) => r.coverage_pct) }], { percent: true, yLabel: '%' }), resources),
    slot(charts, (page) => barChart('Top bypassing agent runs', page.rows.map((r) => r.agent_run || '(none)'), [{ label: 'bypass connects', color: COLORS.bypass, values: page.rows.map((r) => r.connects) }], { yLabel: 'bypasses' }), runs),
    slot(tables, (page) => section('Top bypassing agent runs', resultTable(page)), runs),
    slot(tables, (page) => section('Top bypassing binaries', resultTable(page)), binaries),
    slot(tables, (page) => section('Top bypassing hosts', resultTable(page)), hosts),
    slot(tables, (page) => section('Coverage by resource', resultTable(page)), resources),
  ]);
}

function summaryCards(s) {
  const change = Number(s.bypass_change ?? 0);
  return [
    isTrue(s.gap_overlap) ? el('p', { class: 'warning' }, '⚠ The range overlaps ', el('a', { href: href('/gaps') }, 'audit gaps'), ': some data is known to be missing.') : null,
    el(
      'div',
      { class: 'cards' },
      card('Coverage', `${Number(s.coverage_pct ?? 100).toFixed(1)} %`, `${formatNumber(s.mediated ?? 0)} of ${formatNumber(s.connects ?? 0)} connects through the gateway`, { id: 'coverage' }),
      card('Bypasses', formatNumber(s.bypass ?? 0), `${change > 0 ? '▲' : change < 0 ? '▼' : '='} ${formatNumber(Math.abs(change))} vs the period before · ${formatNumber(s.bypass_agent_runs ?? 0)} agent runs`, { id: 'bypass', class: Number(s.bypass) > 0 ? 'bad' : 'good' }),
      card('Alerts', formatNumber(s.alerts ?? 0), el('a', { href: href('/alerts') }, `${formatNumber(s.critical_alerts ?? 0)} critical`), { id: 'alerts' }),
      card('Gateway sessions', formatNumber(s.sessions ?? 0), el('a', { href: href('/sessions') }, `${formatNumber(s.unattributed_sessions ?? 0)} without a host process`), { id: 'sessions' }),
      card('Audit gaps', formatNumber(s.audit_gaps ?? 0), el('a', { href: href('/gaps') }, 'where data is incomplete'), { id: 'gaps', class: Number(s.audit_gaps) > 0 ? 'bad' : '' }),
    ),
  ];
}
