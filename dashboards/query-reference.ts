import type { ClickHouseClient } from '@clickhouse/client';
import { bindParams, STANDARD_PARAMS, type NamedQuery } from './named-queries';

/**
 * dashboards/sql/README.md: the contract of the named queries for `gapwatch query`, the web API and
 * Grafana. The question and parameters come from each file's header; the result columns and their
 * types from the engine (`DESCRIBE` of the query over the real schema), so the reference cannot drift
 * from the SQL: a test renders it again and compares.
 */

export interface ResultColumn {
  name: string;
  type: string;
}

/** The result columns of a named query, as the engine types them, without running it. */
export async function resultColumns(client: ClickHouseClient, query: NamedQuery): Promise<ResultColumn[]> {
  // Required parameters get an empty value: DESCRIBE plans the query without reading rows.
  const given = Object.fromEntries(query.params.filter((p) => !p.standard && p.defaultValue === undefined).map((p) => [p.name, '']));
  const result = await client.query({
    query: `DESCRIBE TABLE (${query.sql})`,
    query_params: bindParams(query, given),
    format: 'JSONEachRow',
  });
  return (await result.json<{ name: string; type: string }>()).map((row) => ({ name: row.name, type: row.type }));
}

const INTRO = `# Named gap-analysis queries

Each \`.sql\` file here answers one question. The same files serve \`gapwatch query <name>\`, the
collector's web API and the Grafana dashboard (dashboards/grafana, generated from these files): no copy
of a query lives anywhere else. This reference is generated from the files and the engine
(\`npm run dashboards:gen\`); a test fails when it is stale.

## Running them

- CLI: \`gapwatch query coverage --from 7d --param group_by=agent --format json\`. \`--from\`/\`--to\`
  take a duration back from now (\`90s\`, \`30m\`, \`24h\`, \`7d\`), \`now\`, an ISO 8601 time or
  DateTime64 text; \`--since\` is the same as \`--from\`; \`--param name=value\` sets any other parameter.
- Code: \`loadNamedQuery(name)\` and \`bindParams(query, given)\` from dashboards/named-queries.ts give
  the SQL and its bound parameters (defaults filled in, values checked); run them with
  \`client.query({ query: sql, query_params, format: 'JSONEachRow' })\` on a read-only store connection
  (collector/store/query.ts \`prepareQuery\` does both for a name or ad-hoc SQL). Values are bound by
  the engine as typed query parameters, never spliced into the text.
- Unknown parameter names are refused (\`DASHBOARDS_ERR_PARAM\`), except the standard ones, which every
  query accepts and ignores when they do not apply. A parameter listed without a default is required.

## Parameters every query accepts

| name | type | meaning |
| --- | --- | --- |
${STANDARD_PARAMS.map((p) => `| \`${p.name}\` | \`${p.type}\` | ${p.doc} |`).join('\n')}

## Conventions of the results

- Times are \`DateTime64(9, 'UTC')\`; in JSON they are text \`YYYY-MM-DD hh:mm:ss.nnnnnnnnn\`. 64-bit
  integers are JSON strings on the store connections gapwatch opens (\`output_format_json_quote_64bit_integers\`).
- \`gap_overlap\` (every view but audit-gaps): true when an audit gap (dashboards/sql/audit-gaps.sql) lies
  within 60 seconds of the row's time or time span on the row's host — for gateway rows, on its gateway,
  or a loss on the store path (sources spool, store, collector). A loss is usually recorded as an instant
  (when it was noticed), hence the margin. Results so marked may be incomplete.
- \`agent\`: the comm of the agent run's own exec (the process_events row whose exec_id is the run).
- Enums (verdict, kind, severity, outcome, protocol, policy_action) are their lowercase names.
`;

function paramRow(query: NamedQuery, name: string): string {
  const param = query.params.find((p) => p.name === name)!;
  const value = param.defaultValue === undefined ? '**required**' : param.defaultValue === '' ? "`''`" : `\`${param.defaultValue}\``;
  return `| \`${param.name}\` | \`${param.type}\` | ${value} | ${param.doc} |`;
}

export function renderQueryReference(queries: readonly NamedQuery[], columns: ReadonlyMap<string, readonly ResultColumn[]>): string {
  const sections = queries.map((query) => {
    const standard = query.params.filter((p) => p.standard).map((p) => `\`${p.name}\``);
    const own = query.params.filter((p) => !p.standard);
    const lines = [
      `## ${query.name}`,
      '',
      query.question,
      '',
      `Standard parameters it applies: ${standard.length > 0 ? standard.join(', ') : 'none (it names one record)'}.`,
      '',
    ];
    if (own.length > 0) {
      lines.push('| parameter | type | default | meaning |', '| --- | --- | --- | --- |', ...own.map((p) => paramRow(query, p.name)), '');
    }
    lines.push('| column | type |', '| --- | --- |', ...(columns.get(query.name) ?? []).map((c) => `| \`${c.name}\` | \`${c.type}\` |`), '');
    if (query.notes) lines.push(`How it reads the store: ${query.notes}`, '');
    return lines.join('\n');
  });
  return `${INTRO}\n${sections.join('\n')}`;
}
