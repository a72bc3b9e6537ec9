// Alerts: the list with kind/severity filters, and one alert's detail with its process lineage.
import { runQuery } from './api.js';
import { el, formatTime, href, isTrue, link, pager, resultTable, section, put } from './render.js';

const KINDS = ['', 'bypass', 'secret_in_argv', 'audit_gap', 'journal_tampered'];
const SEVERITIES = ['', 'info', 'warning', 'critical'];
const PAGE_ROWS = 50;

export async function renderAlerts(root, filters, search) {
  const alertId = search.get('alert_id');
  if (alertId) return renderAlert(root, alertId);
  const kind = search.get('kind') ?? '';
  const severity = search.get('severity') ?? '';
  const offset = Number(search.get('_offset') ?? 0) || 0;
  const page = await runQuery('recent-alerts', { ...filters, kind, severity }, { rows: PAGE_ROWS, offset });
  // kind and severity are links rather than form fields, so each choice is a URL to share.
  const choice = (key, values, current) =>
    el('p', { class: 'choices', 'data-filter': key }, `${key}: `, values.map((value) => (value === current ? el('strong', {}, value || 'all') : link('/alerts', { kind, severity, [key]: value }, value || 'all'))));
  put(
    root,
    el('h1', {}, 'Alerts'),
    choice('kind', KINDS, kind),
    choice('severity', SEVERITIES, severity),
    resultTable(page, { empty: 'No alerts in this range.' }),
    pager(page),
  );
}

async function renderAlert(root, alertId) {
  const page = await runQuery('alert-detail', { alert_id: alertId }, { rows: 200, offset: 0 });
  put(root, el('p', {}, link('/alerts', { alert_id: null }, '← all alerts')));
  if (page.rows.length === 0) {
    put(root, el('h1', {}, 'Alert'), el('p', { class: 'error' }, `No alert ${alertId}.`));
    return;
  }
  const a = page.rows[0];
  const fact = (label, value) => (value === undefined || value === null || value === '' ? null : el('div', {}, el('dt', {}, label), el('dd', {}, value)));
  put(
    root,
    el('h1', {}, `Alert: ${a.summary ?? a.kind}`),
    isTrue(a.gap_overlap) ? el('p', { class: 'warning' }, '⚠ This alert is within 60 s of an audit gap: events around it may be missing.') : null,
    el(
      'dl',
      { class: 'facts', 'data-alert': alertId },
      fact('kind', a.kind),
      fact('severity', a.severity),
      fact('time', formatTime(a.time)),
      fact('host', a.host),
      fact('resource', a.resource),
      fact('destination', a.destination),
      fact('verdict', a.verdict),
      fact('agent run', a.agent_run ? link('/runs', { agent_run: a.agent_run }, a.agent_run) : null),
      fact('session', a.session_id ? link('/sessions', { session_id: a.session_id }, a.session_id) : null),
    ),
    section(
      'Lineage (the process, then its ancestors up to the agent run)',
      el(
        'ol',
        { class: 'lineage' },
        page.rows.map((row) =>
          el(
            'li',
            { 'data-depth': row.depth },
            el('code', {}, row.binary || row.comm || '(process not seen)'),
            row.pid ? ` pid ${row.pid}` : '',
            row.argv && row.argv.length ? el('div', { class: 'argv' }, Array.isArray(row.argv) ? row.argv.join(' ') : String(row.argv)) : null,
            row.exec_id ? el('div', { class: 'muted' }, row.exec_id === a.agent_run ? link('/runs', { agent_run: row.exec_id }, `${row.exec_id} (agent run)`) : row.exec_id) : null,
          ),
        ),
      ),
    ),
    section('Raw rows', resultTable(page)),
    el('p', {}, el('a', { href: href('/alerts', { alert_id: null }) }, 'back to the list')),
  );
}
