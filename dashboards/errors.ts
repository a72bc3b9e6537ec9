import { GapwatchError } from '../platform/errors';

/** Errors of the dashboards component: the named queries in dashboards/sql and what is built from them. */

export class DashboardQueryParamError extends GapwatchError {
  readonly query: string;
  readonly param: string;

  constructor(query: string, param: string, problem: string) {
    super('DASHBOARDS_ERR_PARAM', `query ${query}: parameter ${param} ${problem}`);
    this.query = query;
    this.param = param;
  }
}

export class DashboardQueryHeaderError extends GapwatchError {
  readonly file: string;

  constructor(file: string, problem: string) {
    super(
      'DASHBOARDS_ERR_QUERY_HEADER',
      `${file}: ${problem}. A named query starts with "-- <name>: <question it answers>" and declares each parameter beyond the standard ones as "-- @param <name> <Type> [= <default>] [| <what it is>]" (see dashboards/sql/README.md)`,
    );
    this.file = file;
  }
}
