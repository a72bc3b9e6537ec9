// Gateway sessions: the list, and one session's detail (statements, HTTP exchanges, SSH recordings).
import { recordings, runQuery } from './api.js';
import { el, formatTime, isTrue, link, pager, resultTable, section, put } from './render.js';

export async function renderSessions(root, filters, search) {
  const sessionId = search.get('session_id');
  if (sessionId) return renderSession(root, sessionId, Number(search.get('_offset') ?? 0) || 0);
  const offset = Number(search.get('_offset') ?? 0) || 0;
  const [page, unattributed] = await Promise.all([
    runQuery('sessions', filters, { rows: 50, offset }),
    runQuery('unattributed-sessions', filters, { rows: 20, offset: 0 }),
  ]);
  put(
    root,
    el('h1', {}, 'Gateway sessions'),
    resultTable(page, { empty: 'No gateway sessions in this range.' }),
    pager(page),
    section('Sessions no host process explains', resultTable(unattributed, { empty: 'Every session in this range was joined with a host connect.' })),
  );
}

async function renderSession(root, sessionId, offset) {
  const [detail, events, casts] = await Promise.all([
    runQuery('session-detail', { session_id: sessionId }, { rows: 1, offset: 0 }),
    runQuery('session-drill-down', { session_id: sessionId }, { rows: 500, offset }),
    recordings(sessionId),
  ]);
  put(root, el('p', {}, link('/sessions', { session_id: null }, '← all sessions')));
  const s = detail.rows[0];
  if (!s) {
    put(root, el('h1', {}, 'Session'), el('p', { class: 'error' }, `No session ${sessionId}.`));
    return;
  }
  const fact = (label, value) => (value === undefined || value === null || value === '' ? null : el('div', {}, el('dt', {}, label), el('dd', {}, value)));
  put(
    root,
    el('h1', {}, `${s.protocol} session `, el('code', {}, sessionId)),
    isTrue(s.gap_overlap) ? el('p', { class: 'warning' }, '⚠ This session overlaps an audit gap: its host attribution or events may be incomplete.') : null,
    el(
      'dl',
      { class: 'facts', 'data-session': sessionId },
      fact('identity', s.identity_subject),
      fact('resource', s.resource),
      fact('target user', s.target_user),
      fact('client', s.client),
      fact('started', formatTime(s.start_time)),
      fact('ended', formatTime(s.end_time) || 'open'),
      fact('outcome', s.outcome),
      fact('failure', s.failure),
      fact('host process', isTrue(s.attributed) ? `${s.binary || ''} pid ${s.pid} on ${s.host}` : 'not attributed'),
      fact('agent run', s.agent_run ? link('/runs', { agent_run: s.agent_run }, s.agent_run) : null),
      fact('statements', s.statements),
      fact('errors', s.errors),
      fact('reviewers', Array.isArray(s.reviewers) ? s.reviewers.join(', ') : s.reviewers),
    ),
  );
  if (casts.recordings.length > 0) {
    const players = casts.recordings.map((cast) => {
      const holder = el('div', { class: 'player', 'data-cast': cast.name });
      requestAnimationFrame(() => AsciinemaPlayer.create(cast.url, holder, { fit: 'width', idleTimeLimit: 2, preload: true }));
      return el('figure', {}, el('figcaption', {}, `${cast.name} (${cast.bytes} bytes)`), holder);
    });
    put(root, section('Shell recordings', players));
  }
  const httpOnly = events.rows.length > 0 && events.rows.every((r) => r.kind === 'http');
  put(
    root,
    section(
      httpOnly ? 'HTTP exchanges' : 'Events',
      resultTable(events, { hideEmpty: true, hide: httpOnly ? ['statement_', 'command_tag', 'copy_', 'shell_'] : s.protocol === 'ssh' ? ['http_', 'copy_'] : ['http_', 'shell_'], empty: 'No events recorded.' }),
    ),
  );
}
