import { GapwatchError } from '../../platform/errors';
import { HttpStatus } from './protocol';

/**
 * The HTTP gateway's error catalogue. An error that reaches an agent is answered with its `status`
 * and a JSON body `{ "error": code, "message": message }`; callers branch on `code`.
 */
export class HttpGatewayError extends GapwatchError {
  readonly status: HttpStatus;

  constructor(code: string, status: HttpStatus, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
  }
}

/** No usable agent credential: missing, malformed, unknown, revoked or expired. */
export class AgentAuthError extends HttpGatewayError {
  constructor(detail: string) {
    super('GW_ERR_HTTP_AUTH', HttpStatus.Unauthorized, `${detail}; send your gapwatch token as "Authorization: Bearer gwt_…" (or Basic with your login and token); \`gapwatch token create\` issues one`);
  }
}

/** Too many token verifications are already running (each costs a PBKDF2 derivation). */
export class AuthBusyError extends HttpGatewayError {
  constructor() {
    super('GW_ERR_HTTP_AUTH_BUSY', HttpStatus.ServiceUnavailable, 'the gateway is verifying too many new tokens at once; retry shortly');
  }
}

/** Neither the Host nor the path selects a configured resource. */
export class UnknownResourceError extends HttpGatewayError {
  constructor(host: string, path: string) {
    super(
      'GW_ERR_HTTP_UNKNOWN_RESOURCE',
      HttpStatus.NotFound,
      `the gateway has no HTTP resource for host "${host}" and path "${path}"; use a host name or path prefix the gateway operator configured`,
    );
  }
}

/** The request is malformed or ambiguous (smuggling shapes, bad target); it never goes upstream. */
export class BadRequestError extends HttpGatewayError {
  constructor(detail: string, status: HttpStatus = HttpStatus.BadRequest) {
    super('GW_ERR_HTTP_BAD_REQUEST', status, `the request was refused: ${detail}; nothing was forwarded`);
  }
}

/** A method/path rule refused the request before the upstream saw it. */
export class PolicyDeniedError extends HttpGatewayError {
  readonly rule: string;

  constructor(rule: string, reason: string) {
    super('GW_ERR_POLICY_DENIED', HttpStatus.Forbidden, reason);
    this.rule = rule;
  }
}

/** A request held for review was denied by a reviewer (403) or no one decided in time (504); it never went upstream. */
export class ReviewRefusedError extends HttpGatewayError {
  readonly reviewId: string;
  readonly rule: string;

  constructor(reviewId: string, rule: string, outcome: { outcome: 'denied'; reviewer: string; reason: string } | { outcome: 'timed_out' }) {
    if (outcome.outcome === 'denied') {
      super('GW_ERR_POLICY_REVIEW_DENIED', HttpStatus.Forbidden, `review ${reviewId} was denied by ${outcome.reviewer}: ${outcome.reason}; nothing was forwarded`);
    } else {
      super('GW_ERR_POLICY_REVIEW_TIMED_OUT', HttpStatus.GatewayTimeout, `no one decided review ${reviewId} in time; nothing was forwarded; ask a reviewer to watch \`gapwatch reviews\` and retry`);
    }
    this.reviewId = reviewId;
    this.rule = rule;
  }
}

/** A request was to be held for review but the review could not be filed (the review directory failed). */
export class ReviewUnavailableError extends HttpGatewayError {
  constructor(cause: unknown) {
    super('GW_ERR_HTTP_REVIEW_UNAVAILABLE', HttpStatus.ServiceUnavailable, 'the request needs a review, but the gateway could not file it; nothing was forwarded; the gateway operator should check the review directory', { cause });
  }
}

/** A rule holds requests for review but the gateway was given no review channel (data directory). */
export class ReviewChannelMissingError extends GapwatchError {
  constructor() {
    super('GW_ERR_HTTP_REVIEW_CHANNEL', 'gateway.http has rules with action review, but the HTTP gateway was started without a review channel; start it through `gapwatch gateway`/`up`, which give it the data directory');
  }
}

/** The resource's credential source (env var, file) is missing or empty. */
export class CredentialUnavailableError extends HttpGatewayError {
  constructor(resource: string, detail: string, cause?: unknown) {
    super(
      'GW_ERR_HTTP_CREDENTIAL',
      HttpStatus.BadGateway,
      `the upstream credential of resource "${resource}" is unavailable (${detail}); the gateway operator should fix gateway.http.resources[].credential`,
      { cause },
    );
  }
}

/** The upstream could not be reached or broke off; the agent gets 502 (or 504 on a timeout). */
export class UpstreamError extends HttpGatewayError {
  constructor(resource: string, detail: string, status: HttpStatus = HttpStatus.BadGateway, cause?: unknown) {
    super('GW_ERR_HTTP_UPSTREAM', status, `the gateway could not complete the request to resource "${resource}": ${detail}`, { cause });
  }
}

/** The journal refused a record; the gateway does not forward what it could not record. */
export class AuditUnavailableError extends HttpGatewayError {
  constructor(cause: unknown) {
    super(
      'GW_ERR_HTTP_AUDIT_UNAVAILABLE',
      HttpStatus.ServiceUnavailable,
      'the gateway cannot write its audit journal, so it forwards nothing; the gateway operator should check the journal disk',
      { cause },
    );
  }
}

/** The listener's TLS certificate or key could not be loaded. */
export class ListenerTlsError extends GapwatchError {
  constructor(detail: string, cause?: unknown) {
    super('GW_ERR_HTTP_TLS', `the HTTP listener's TLS setup failed: ${detail}; check gateway.http.tls.cert and .key`, { cause });
  }
}
