import { describeCause, GapwatchError } from '../../platform/errors';

/** The web UI's and web API's error catalogue. Codes are stable; callers branch on them. */

export class WebListenFailedError extends GapwatchError {
  constructor(host: string, port: number, cause: unknown) {
    super(
      'WEB_ERR_LISTEN_FAILED',
      `the web UI cannot listen on ${host}:${port}: ${describeCause(cause)}. Free the port, or set collector.web.listen.port (0 picks a free one) or collector.web.enabled: false`,
      { cause },
    );
  }
}

export class WebTokenUnreadableError extends GapwatchError {
  constructor(file: string, cause: unknown) {
    super('WEB_ERR_TOKEN_UNREADABLE', `cannot read or create the web access token ${file}: ${describeCause(cause)}. Check the data directory's ownership and permissions`, { cause });
  }
}

/** A request the API refuses: bad parameters, an unknown query or route, a write. Carries the HTTP status. */
export class WebRequestRefusedError extends GapwatchError {
  readonly status: number;
  /** Response headers the refusal calls for (Allow on a 405). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, message: string, headers: Readonly<Record<string, string>> = {}) {
    super(code, message);
    this.status = status;
    this.headers = headers;
  }
}

export class WebApiUnreachableError extends GapwatchError {
  constructor(url: string, cause: unknown) {
    super(
      'WEB_ERR_API_UNREACHABLE',
      `the embedded store is held by a running gapwatch, and its web API at ${url} did not answer: ${describeCause(cause)}. Is \`gapwatch up\` still running? Its address and token are in <dataDir>/web/`,
      { cause },
    );
  }
}

export class WebApiFailedError extends GapwatchError {
  readonly status: number;

  constructor(url: string, status: number, detail: string) {
    super('WEB_ERR_API_FAILED', `the running gapwatch's web API (${url}) answered ${status}: ${detail}`);
    this.status = status;
  }
}
