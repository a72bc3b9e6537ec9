import type { Command } from 'commander';
import { Option } from 'commander';
import { isQueryName, namedQueries, parseSince, runQuery, type OutputFormat } from '../../collector/store/query';
import { StoreEngineBusyError, StoreQueryRefusedError } from '../../collector/store/errors';
import { queryThroughWebApi, runningWebApi } from '../../collector/web/api-client';
import { defineCommand } from '../cli';

interface QueryOptions {
  since?: string;
  from?: string;
  to?: string;
  format: OutputFormat;
  param: string[];
}

/**
 * `gapwatch query <name|SQL>`: a named dashboard query (dashboards/sql/<name>.sql, parameters and
 * defaults in dashboards/sql/README.md) or read-only SQL against the configured store. Writes are refused by the store itself (readonly connection).
 * While a running gapwatch holds the embedded store, named queries go through its web API instead.
 */
export function registerQuery(program: Command): void {
  defineCommand<QueryOptions>(
    program,
    'query',
    'run a named dashboard query or read-only SQL against the store',
    (command) =>
      command
        .argument('<name|SQL>', `a named query (${namedQueries().join(', ')}) or SQL text`)
        .option('--from <when>', 'start of the time range, bound to {from:…}: a duration back from now (30m, 24h, 7d), an ISO 8601 time or DateTime64 text (default 24h)')
        .option('--to <when>', 'end of the time range, bound to {to:…}: now, a duration back from now or a time (default now)')
        .option('--since <when>', 'the same as --from (ad-hoc SQL may bind it as {since:…})')
        .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
        .option('--param <name=value>', 'a query parameter {name:Type}; repeatable', (value: string, previous: string[]) => [...previous, value], []),
    async (context, options, args) => {
      const params: Record<string, string> = {};
      for (const pair of options.param) {
        const eq = pair.indexOf('=');
        if (eq <= 0) throw new StoreQueryRefusedError(`--param ${JSON.stringify(pair)} is not name=value`);
        params[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      const request = {
        query: args[0]!,
        format: options.format,
        from: options.from ?? (options.since === undefined ? undefined : parseSince(options.since)),
        to: options.to,
        params,
      };
      let output: string;
      try {
        output = await runQuery(context.config, request);
      } catch (err) {
        // The embedded store is held by a running `gapwatch up` or `gapwatch collector`: ask its web API,
        // which binds the parameters the same way (dashboards/named-queries.ts).
        const api = err instanceof StoreEngineBusyError ? runningWebApi(context.config.dataDir) : null;
        if (!api || !isQueryName(request.query)) throw err;
        const given: Record<string, string> = { ...params };
        if (request.from !== undefined) given.from = request.from;
        if (request.to !== undefined) given.to = request.to;
        output = await queryThroughWebApi(api, request.query.trim(), given, request.format);
      }
      process.stdout.write(output);
      return 0;
    },
  );
}
