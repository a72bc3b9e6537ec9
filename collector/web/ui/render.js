// Small DOM helpers shared by the views: elements, tables of query results, links between views.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Appends children, skipping null/false (a part that does not apply) and flattening lists. */
export function put(parent, ...children) {
  for (const child of children.flat(2)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** The filters every view keeps in its URL, so a link or reload shows the same thing. */
export const FILTER_KEYS = ['from', 'to', 'host', 'resource', 'agent'];

export function currentFilters() {
  const search = new URLSearchParams(location.search);
  const filters = { from: search.get('from') || '24h', to: search.get('to') || 'now' };
  for (const key of ['host', 'resource', 'agent']) if (search.get(key)) filters[key] = search.get(key);
  return filters;
}

/** A link to a view, carrying the current filters plus `extra`. */
export function href(path, extra = {}) {
  const search = new URLSearchParams();
  const filters = currentFilters();
  for (const key of FILTER_KEYS) if (filters[key] && !(key === 'from' && filters[key] === '24h') && !(key === 'to' && filters[key] === 'now')) search.set(key, filters[key]);
  for (const [key, value] of Object.entries(extra)) {
    if (value === null || value === undefined || value === '') search.delete(key);
    else search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

export function link(path, extra, text) {
  return el('a', { href: href(path, extra) }, text);
}

/** ClickHouse DateTime64 text (UTC) → epoch seconds. */
export function epochSeconds(text) {
  const iso = `${String(text).replace(' ', 'T').slice(0, 23)}Z`;
  return Date.parse(iso) / 1000;
}

export function formatTime(text) {
  const value = String(text);
  return value.startsWith('1970-01-01') ? '' : value.slice(0, 19);
}

export function formatNumber(value) {
  const n = Number(value);
  return Number.isFinite(n) ? n.toLocaleString('en-US') : String(value);
}

/** Columns whose values name something another view shows. */
const LINKED_COLUMNS = {
  agent_run: (v) => link('/runs', { agent_run: v }, v),
  session_id: (v) => link('/sessions', { session_id: v }, v),
  alert_id: (v) => link('/alerts', { alert_id: v }, v),
  resource: (v) => link(location.pathname, { resource: v, _offset: null }, v),
  host: (v) => link(location.pathname, { host: v, _offset: null }, v),
};

function cell(column, value) {
  if (value === null || value === undefined || value === '') return el('td', { class: 'empty' });
  if (Array.isArray(value)) return el('td', {}, value.join(', '));
  if (typeof value === 'object') return el('td', {}, JSON.stringify(value));
  if (LINKED_COLUMNS[column.name]) return el('td', {}, LINKED_COLUMNS[column.name](String(value)));
  if (column.type.includes('DateTime')) return el('td', { class: 'time' }, formatTime(value));
  if (/^(U?Int|Float|Decimal)/.test(column.type.replace(/^Nullable\(/, ''))) return el('td', { class: 'num' }, formatNumber(value));
  return el('td', {}, String(value));
}

/**
 * A query result page as a table. Rows within 60 s of an audit gap (gap_overlap) are marked: the data
 * behind them is known to be incomplete.
 */
export function resultTable(page, options = {}) {
  // `hide` names columns, or column prefixes when the entry ends in "_" (http_ hides http_method, …).
  const hidden = ['gap_overlap', ...(options.hide ?? [])];
  // hideEmpty: event tables mix kinds, and a column no row fills (0, '', unspecified) is noise.
  const filled = (c) => page.rows.some((row) => !['', '0', 'unspecified', '0.000000000'].includes(String(row[c.name] ?? '')) && !(Array.isArray(row[c.name]) && row[c.name].length === 0));
  const columns = page.columns.filter((c) => !hidden.some((h) => (h.endsWith('_') ? c.name.startsWith(h) : c.name === h)) && (!options.hideEmpty || filled(c)));
  const marksGaps = page.columns.some((c) => c.name === 'gap_overlap');
  if (page.rows.length === 0) return el('p', { class: 'muted empty-result' }, options.empty ?? 'Nothing in this range.');
  return el(
    'table',
    { class: 'result', 'data-query': page.query },
    el('thead', {}, el('tr', {}, marksGaps ? el('th', { title: 'overlaps an audit gap' }, '') : null, columns.map((c) => el('th', {}, c.name.replaceAll('_', ' '))))),
    el(
      'tbody',
      {},
      page.rows.map((row) =>
        el(
          'tr',
          { class: marksGaps && isTrue(row.gap_overlap) ? 'gap' : null },
          marksGaps ? el('td', { class: 'gap-mark', title: isTrue(row.gap_overlap) ? 'overlaps an audit gap: the data here may be incomplete' : '' }, isTrue(row.gap_overlap) ? '⚠' : '') : null,
          columns.map((c) => cell(c, row[c.name])),
        ),
      ),
    ),
  );
}

export function isTrue(value) {
  return value === true || value === 1 || value === '1' || value === 'true';
}

/** Previous/next links for a paged result; the offset lives in the URL as _offset. */
export function pager(page) {
  if (page.offset === 0 && !page.hasMore) return null;
  return el(
    'nav',
    { class: 'pager' },
    page.offset > 0 ? link(location.pathname, { ...Object.fromEntries(new URLSearchParams(location.search)), _offset: Math.max(0, page.offset - page.limit) || null }, '← newer') : null,
    el('span', { class: 'muted' }, ` rows ${page.offset + 1}–${page.offset + page.rows.length} `),
    page.hasMore ? link(location.pathname, { ...Object.fromEntries(new URLSearchParams(location.search)), _offset: page.offset + page.limit }, 'older →') : null,
  );
}

export function section(title, ...children) {
  return el('section', {}, el('h2', {}, title), ...children);
}

export function errorBox(err) {
  return el('p', { class: 'error' }, err.message);
}
