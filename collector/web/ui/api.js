// The web API as the pages use it: named queries only, each with the filters it declares.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function getJson(url) {
  const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (response.status === 401) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, 'WEB_ERR_UNAUTHORIZED', 'logged out');
  }
  const body = await response.json();
  if (!response.ok) throw new ApiError(response.status, body.error?.code ?? '', body.error?.message ?? response.statusText);
  return body;
}

let catalogue = null;

/** name → Set of parameter names, from /api/queries (once per page load). */
export async function queryParams() {
  if (!catalogue) {
    const body = await getJson('/api/queries');
    catalogue = new Map(body.queries.map((q) => [q.name, new Set(q.params.map((p) => p.name))]));
  }
  return catalogue;
}

/**
 * Runs a named query. `params` may hold more than the query takes (the page's filters): only the
 * ones it declares are sent, since the API refuses a parameter a query does not have.
 */
export async function runQuery(name, params, page = { rows: 100, offset: 0 }) {
  const declared = (await queryParams()).get(name);
  if (!declared) throw new ApiError(404, 'WEB_ERR_NOT_FOUND', `the store has no named query ${name}`);
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (declared.has(key) && value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  // A query's own limit bounds what it computes; ask for just enough for this page and the next row.
  if (declared.has('limit') && !('limit' in params)) search.set('limit', String(page.offset + page.rows + 1));
  search.set('_rows', String(page.rows));
  search.set('_offset', String(page.offset));
  return getJson(`/api/queries/${encodeURIComponent(name)}?${search}`);
}

export async function recordings(sessionId) {
  return getJson(`/api/recordings/${encodeURIComponent(sessionId)}`);
}
