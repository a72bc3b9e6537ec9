/**
 * HTTP/1.1 facts the gateway relies on (RFC 9110 semantics, RFC 9112 message syntax) and the
 * WebSocket framing it counts (RFC 6455 §5.2).
 */

export enum HttpStatus {
  SwitchingProtocols = 101,
  BadRequest = 400,
  Unauthorized = 401,
  Forbidden = 403,
  NotFound = 404,
  MethodNotAllowed = 405,
  RequestTimeout = 408,
  PayloadTooLarge = 413,
  UriTooLong = 414,
  ExpectationFailed = 417,
  RequestHeaderFieldsTooLarge = 431,
  NotImplemented = 501,
  BadGateway = 502,
  ServiceUnavailable = 503,
  GatewayTimeout = 504,
}

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, so a proxy never forwards
 * them; fields named in Connection are hop-by-hop too. Proxy-Connection and Keep-Alive are the
 * legacy ones that still appear.
 */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Media types whose bodies are recorded as text (besides text/*, +json and +xml suffixes). */
export const TEXTUAL_MEDIA_TYPES = new Set([
  'application/json',
  'application/xml',
  'application/x-www-form-urlencoded',
  'application/javascript',
  'application/graphql',
  'application/x-ndjson',
  'application/yaml',
]);

/** WebSocket frame opcodes (RFC 6455 §5.2). */
export enum WebSocketOpcode {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xa,
}
