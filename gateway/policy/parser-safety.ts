/**
 * Settings that change how the server reads a query string. The gateway classifies with
 * PostgreSQL's parser as the server runs it by default; if a session could change the lexing under
 * it, the same bytes would mean one thing to the gateway and another to the server, and a policy
 * would be bypassed by a string literal that ends in a different place.
 *
 * - standard_conforming_strings = off: backslashes escape in '…' literals, so 'a\'' ends elsewhere.
 * - client_encoding of an encoding that is not ASCII-safe (a multi-byte character whose second byte
 *   is 0x5C '\' or 0x27 '''): SJIS, BIG5, GBK, UHC, GB18030 and their aliases. Server encodings are
 *   all ASCII-safe, so every other client encoding lexes the same as the UTF-8 the gateway reads.
 *
 * gateway/postgres/ also checks what the server reports in ParameterStatus, at login (startup options,
 * ALTER ROLE / DATABASE settings) and during the session (parserHazard()).
 */
const UNSAFE_CLIENT_ENCODINGS = new Set([
  'SJIS',
  'SHIFTJIS',
  'MSKANJI',
  'WIN932',
  'CP932',
  'SHIFTJIS2004',
  'BIG5',
  'WIN950',
  'CP950',
  'GBK',
  'WIN936',
  'CP936',
  'UHC',
  'WIN949',
  'CP949',
  'GB18030',
]);

/** PostgreSQL compares encoding names ignoring case and non-alphanumerics ("Shift_JIS" = "SHIFTJIS"). */
export function isParserSafeClientEncoding(name: string): boolean {
  return !UNSAFE_CLIENT_ENCODINGS.has(name.toUpperCase().replace(/[^A-Z0-9]/g, ''));
}

/** A boolean GUC value as PostgreSQL reads it (parse_bool): on, true, yes, 1 and prefixes. */
export function isTrueSetting(value: string): boolean {
  const text = value.trim().toLowerCase();
  if (text === '') return false;
  return ['on', 'true', 'yes', '1'].some((word) => (word === 'on' ? text === 'on' : word.startsWith(text)));
}

export const PARSER_SETTINGS = new Set(['standard_conforming_strings', 'client_encoding']);

/**
 * Whether a setting the server reports (ParameterStatus) makes it lex statements differently from the
 * gateway's parser: the reason, else null.
 */
export function parserHazard(name: string, value: string): string | null {
  if (name === 'standard_conforming_strings' && !isTrueSetting(value)) return 'standard_conforming_strings is off';
  if (name === 'client_encoding' && !isParserSafeClientEncoding(value)) return `client_encoding ${value} is not ASCII-safe`;
  return null;
}
