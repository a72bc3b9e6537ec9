// The dashboard: one shell page whose path picks the view. Every number on it comes from a named
// query of dashboards/sql run by the collector's read-only API.
import { currentFilters, el, errorBox, href, put } from './render.js';
import { renderOverview } from './overview-view.js';
import { renderAlerts } from './alerts-view.js';
import { renderRuns } from './runs-view.js';
import { renderSessions } from './sessions-view.js';
import { renderGaps } from './gaps-view.js';

const VIEWS = {
  '/': { title: 'Overview', render: renderOverview, keep: [] },
  '/alerts': { title: 'Alerts', render: renderAlerts, keep: ['kind', 'severity', 'alert_id'] },
  '/runs': { title: 'Agent runs', render: renderRuns, keep: ['agent_run'] },
  '/sessions': { title: 'Sessions', render: renderSessions, keep: ['session_id'] },
  '/gaps': { title: 'Audit gaps', render: renderGaps, keep: [] },
};

const RANGES = [
  ['1h', 'last hour'],
  ['6h', 'last 6 hours'],
  ['24h', 'last 24 hours'],
  ['7d', 'last 7 days'],
  ['30d', 'last 30 days'],
];

function renderNav(path) {
  const nav = document.getElementById('nav');
  for (const [target, view] of Object.entries(VIEWS)) {
    nav.append(el('a', { href: href(target), class: target === path ? 'active' : null, 'aria-current': target === path ? 'page' : null }, view.title));
  }
}

/** The filter bar is a plain GET form: submitting it reloads the view with the filters in the URL. */
function renderFilters(path, view) {
  const form = document.getElementById('filters');
  form.method = 'get';
  form.action = path;
  const filters = currentFilters();
  const search = new URLSearchParams(location.search);
  const from = el('select', { name: 'from', id: 'filter-from' }, RANGES.map(([value, label]) => el('option', { value, selected: filters.from === value }, label)));
  if (!RANGES.some(([value]) => value === filters.from)) from.append(el('option', { value: filters.from, selected: true }, `since ${filters.from}`));
  put(
    form,
    el('label', {}, 'Range ', from),
    filters.to !== 'now' ? el('input', { type: 'hidden', name: 'to', value: filters.to }) : null,
    el('label', {}, 'Host ', el('input', { name: 'host', id: 'filter-host', value: filters.host ?? '', placeholder: 'all' })),
    el('label', {}, 'Resource ', el('input', { name: 'resource', id: 'filter-resource', value: filters.resource ?? '', placeholder: 'all' })),
    el('label', {}, 'Agent ', el('input', { name: 'agent', id: 'filter-agent', value: filters.agent ?? '', placeholder: 'all' })),
    view.keep.filter((key) => search.get(key)).map((key) => el('input', { type: 'hidden', name: key, value: search.get(key) })),
    el('button', { type: 'submit' }, 'Apply'),
  );
}

async function main() {
  const path = location.pathname;
  const view = VIEWS[path] ?? VIEWS['/'];
  document.title = `gapwatch — ${view.title}`;
  renderNav(path);
  renderFilters(path, view);
  const main = document.getElementById('view');
  const content = el('div', { class: 'content' });
  // In the document from the start: a view may fill in part by part as its queries answer.
  main.replaceChildren(content);
  try {
    await view.render(content, currentFilters(), new URLSearchParams(location.search));
  } catch (err) {
    main.replaceChildren(el('h1', {}, view.title), errorBox(err));
  }
  document.body.dataset.ready = 'true';
}

main();
