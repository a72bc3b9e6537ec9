/**
 * Wire constants of the PostgreSQL frontend/backend protocol, version 3.0.
 * Spec: https://www.postgresql.org/docs/15/protocol-message-formats.html
 *
 * Every message after startup is a type byte, then an Int32 length that counts itself but not the
 * type byte, then the body. Startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest,
 * CancelRequest) have no type byte: an Int32 length, then an Int32 code that tells them apart.
 */

/** The code that follows the length of a startup-phase packet. */
export enum StartupCode {
  /** Protocol 3.0: major 3 in the high 16 bits, minor 0 in the low. */
  Protocol3 = 196608,
  CancelRequest = 80877102,
  SslRequest = 80877103,
  GssEncRequest = 80877104,
}

/** Messages a client sends after startup. */
export enum FrontendType {
  Bind = 0x42, // 'B'
  Close = 0x43, // 'C'
  CopyData = 0x64, // 'd'
  CopyDone = 0x63, // 'c'
  CopyFail = 0x66, // 'f'
  Describe = 0x44, // 'D'
  Execute = 0x45, // 'E'
  Flush = 0x48, // 'H'
  FunctionCall = 0x46, // 'F'
  /** PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share 'p'; the state says which. */
  Password = 0x70, // 'p'
  Parse = 0x50, // 'P'
  Query = 0x51, // 'Q'
  Sync = 0x53, // 'S'
  Terminate = 0x58, // 'X'
}

/** Messages a server sends. */
export enum BackendType {
  Authentication = 0x52, // 'R'
  BackendKeyData = 0x4b, // 'K'
  BindComplete = 0x32, // '2'
  CloseComplete = 0x33, // '3'
  CommandComplete = 0x43, // 'C'
  CopyData = 0x64, // 'd'
  CopyDone = 0x63, // 'c'
  CopyInResponse = 0x47, // 'G'
  CopyOutResponse = 0x48, // 'H'
  CopyBothResponse = 0x57, // 'W'
  DataRow = 0x44, // 'D'
  EmptyQueryResponse = 0x49, // 'I'
  ErrorResponse = 0x45, // 'E'
  FunctionCallResponse = 0x56, // 'V'
  NegotiateProtocolVersion = 0x76, // 'v'
  NoData = 0x6e, // 'n'
  NoticeResponse = 0x4e, // 'N'
  NotificationResponse = 0x41, // 'A'
  ParameterDescription = 0x74, // 't'
  ParameterStatus = 0x53, // 'S'
  ParseComplete = 0x31, // '1'
  PortalSuspended = 0x73, // 's'
  ReadyForQuery = 0x5a, // 'Z'
  RowDescription = 0x54, // 'T'
}

/** The Int32 that follows 'R' and says which authentication step this is. */
export enum AuthCode {
  Ok = 0,
  CleartextPassword = 3,
  Md5Password = 5,
  Sasl = 10,
  SaslContinue = 11,
  SaslFinal = 12,
}

/** Transaction status carried by ReadyForQuery. */
export enum TransactionStatus {
  Idle = 0x49, // 'I'
  InTransaction = 0x54, // 'T'
  Failed = 0x45, // 'E'
}

/** Field codes of ErrorResponse and NoticeResponse. */
export enum ErrorField {
  Severity = 0x53, // 'S' (localized)
  SeverityNonLocalized = 0x56, // 'V'
  Code = 0x43, // 'C'
  Message = 0x4d, // 'M'
  Detail = 0x44, // 'D'
  Hint = 0x48, // 'H'
}

/** The SQLSTATEs the gateway itself raises (Appendix A of the PostgreSQL manual). */
export enum SqlState {
  ProtocolViolation = '08P01',
  ConnectionFailure = '08006',
  SqlClientUnableToEstablishConnection = '08001',
  InvalidPassword = '28P01',
  InvalidAuthorizationSpecification = '28000',
  InvalidCatalogName = '3D000',
  InsufficientPrivilege = '42501',
  QueryCanceled = '57014',
  AdminShutdown = '57P01',
  FeatureNotSupported = '0A000',
  ProgramLimitExceeded = '54000',
}

/** Describe and Close name either a prepared statement or a portal. */
export enum TargetKind {
  Statement = 0x53, // 'S'
  Portal = 0x50, // 'P'
}

/** Format codes of Bind parameters and results. */
export enum FormatCode {
  Text = 0,
  Binary = 1,
}

/** SASL mechanism the gateway offers agents and speaks to upstream servers. */
export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
