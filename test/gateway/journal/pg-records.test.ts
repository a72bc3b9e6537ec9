import assert from 'node:assert/strict';
import { loadGatewayAddon } from '../../../native/binding';
import { decodeRecord, encodeRecord } from '../../../gateway/journal/canonical-encoding';
import { chainRecord, recordHash, recordSuffix, ZERO_HASH } from '../../../gateway/journal/record-chain';
import { messageRecord, parameterDisplay, type ParameterRedactor } from '../../../gateway/postgres/audit-format';
import { frontendTypeName, type BareMessage, type FrontendMessage } from '../../../gateway/postgres/frontend-parser';
import { FormatCode, FrontendType, TargetKind } from '../../../gateway/postgres/protocol';
import type { SessionEvent } from '../../../proto/generated/gapwatch/v1/SessionEvent';
import { seededRandom as random } from '../../support/seeded-random';

/**
 * The C++ encoder of the PostgreSQL gateway's two records per statement (native/addon/pg-records.cc)
 * against the JavaScript canonical encoder: the same record, built from the same wire bytes, must
 * give the same suffix bytes, or the native data path's records would not hash and verify like the
 * JavaScript proxy's. The JavaScript side is built with the proxy's own functions (messageRecord,
 * parameterDisplay) from the decoded strings; the native side gets the raw bytes.
 */

interface PgRecordsHook {
  encodePgRecordForTest(kind: 'request' | 'outcome' | 'policy' | 'error' | 'copy', timeUnixNano: bigint, event: object): Buffer;
}

let hookProblem: string | null = null;

/** The addon's parity-test hook (native/addon/pg-records-binding.cc). */
function loadHook(): PgRecordsHook | null {
  const { exports, problem } = loadGatewayAddon();
  const hook = exports as Partial<PgRecordsHook> | null;
  if (hook && typeof hook.encodePgRecordForTest === 'function') return hook as PgRecordsHook;
  hookProblem = problem ?? 'gapwatch_gateway.node predates encodePgRecordForTest (rebuild it)';
  return null;
}

function requireNative(this: Mocha.Context): PgRecordsHook {
  const loaded = loadHook();
  if (loaded) return loaded;
  // The addon is part of every setup (npm test builds it): a missing one is a failure, never a skip.
  throw new Error(`the native PostgreSQL record encoder is not available (npm run setup builds it): ${hookProblem}`);
}

// What arrived on the wire, from which both sides build their records.

interface WireParameter {
  value: Buffer | null;
  format: FormatCode;
  /** The masking policy matched it (applies to text values only, as in parameterRecord). */
  redacted: boolean;
}

interface WireMessage {
  type: FrontendType;
  withheld: boolean;
  text: Buffer;
  name: Buffer;
  portal: Buffer;
  target: TargetKind;
  parameters: WireParameter[];
  parameterTypes: number[];
  maxRows: number;
  functionOid: number;
}

type ActionName = 'POLICY_ACTION_UNSPECIFIED' | 'POLICY_ACTION_ALLOW' | 'POLICY_ACTION_DENY' | 'POLICY_ACTION_REVIEW' | 'POLICY_ACTION_TIMED_OUT';

interface WireStatement {
  text: Buffer;
  parameters: WireParameter[];
  commandTag: Buffer;
  rows: bigint;
  errorCode: Buffer;
  durationNano: bigint;
  errorMessage: Buffer;
  via: string;
  statementName: Buffer;
  portal: Buffer;
  policy: { action: ActionName; rule: Buffer; reason: Buffer } | null;
  result: { columns: Buffer[]; rows: bigint; maskedColumns: Buffer[] } | null;
  classes: Buffer[];
}

interface WireEvent {
  recordTime: bigint;
  sessionId: Buffer;
  eventSeq: bigint;
  timeUnixNano: bigint;
}

const NONE = Buffer.alloc(0);
const utf8 = (bytes: Buffer): string => bytes.toString('utf8');
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** A uint64 as the proxy gives it: a number while exact, a decimal string beyond. */
const jsUint64 = (n: bigint): number | string => (n <= MAX_SAFE ? Number(n) : n.toString());

function message(type: FrontendType, fields: Partial<WireMessage> = {}): WireMessage {
  return {
    type,
    withheld: false,
    text: NONE,
    name: NONE,
    portal: NONE,
    target: TargetKind.Statement,
    parameters: [],
    parameterTypes: [],
    maxRows: 0,
    functionOid: 0,
    ...fields,
  };
}

function statement(fields: Partial<WireStatement> = {}): WireStatement {
  return {
    text: NONE,
    parameters: [],
    commandTag: NONE,
    rows: 0n,
    errorCode: NONE,
    durationNano: 0n,
    errorMessage: NONE,
    via: 'query',
    statementName: NONE,
    portal: NONE,
    policy: null,
    result: { columns: [], rows: 0n, maskedColumns: [] },
    classes: [],
    ...fields,
  };
}

const HEAD: WireEvent = { recordTime: 1_764_150_000_000_000_000n, sessionId: Buffer.from('01JPGSESSION0000000000001'), eventSeq: 7n, timeUnixNano: 1_764_150_000_000_000_123n };

function redactorOf(parameters: WireParameter[]): ParameterRedactor {
  return (index) => parameters[index]!.redacted;
}

/** The FrontendMessage the parser would have produced from these bytes. */
function frontendMessage(w: WireMessage): FrontendMessage {
  const raw = NONE;
  const formats = w.parameters.map((p) => p.format);
  const values = w.parameters.map((p) => p.value);
  switch (w.type) {
    case FrontendType.Query:
      return { type: w.type, raw, text: utf8(w.text) };
    case FrontendType.Parse:
      return { type: w.type, raw, name: utf8(w.name), text: utf8(w.text), parameterTypes: w.parameterTypes };
    case FrontendType.Bind:
      return { type: w.type, raw, portal: utf8(w.portal), statement: utf8(w.name), parameterFormats: formats, parameters: values, resultFormats: [] };
    case FrontendType.Describe:
    case FrontendType.Close:
      return { type: w.type, raw, target: w.target, name: utf8(w.target === TargetKind.Portal ? w.portal : w.name) };
    case FrontendType.Execute:
      return { type: w.type, raw, portal: utf8(w.portal), maxRows: w.maxRows };
    case FrontendType.FunctionCall:
      return { type: w.type, raw, functionOid: w.functionOid, argumentFormats: formats, arguments: values, resultFormat: FormatCode.Text };
    case FrontendType.CopyFail:
      return { type: w.type, raw, message: utf8(w.text) };
    case FrontendType.CopyData:
      return { type: w.type, raw, data: w.text };
    case FrontendType.Password:
      return { type: w.type, raw, body: w.text };
    default:
      return { type: w.type as BareMessage['type'], raw };
  }
}

function nativeParameter(p: WireParameter): object {
  // parameterRecord's order: NULL, then binary, then redaction of text values.
  if (p.value === null) return { null: true };
  if (p.format === FormatCode.Binary) return { hex: p.value };
  return p.redacted ? { redacted: true } : { text: p.value };
}

/** The native side's input: messageRecord's choice of fields per type, with the raw bytes. */
function nativeMessage(w: WireMessage): object {
  const base = { type: frontendTypeName(w.type), withheld: w.withheld };
  switch (w.type) {
    case FrontendType.Query:
    case FrontendType.CopyFail:
      return { ...base, text: w.text };
    case FrontendType.Parse:
      return { ...base, text: w.text, statementName: w.name, parameterTypes: w.parameterTypes };
    case FrontendType.Bind:
      return { ...base, statementName: w.name, portal: w.portal, parameters: w.parameters.map(nativeParameter) };
    case FrontendType.Describe:
    case FrontendType.Close:
      return w.target === TargetKind.Portal ? { ...base, portal: w.portal } : { ...base, statementName: w.name };
    case FrontendType.Execute:
      return { ...base, portal: w.portal, maxRows: w.maxRows };
    case FrontendType.FunctionCall:
      return { ...base, functionOid: w.functionOid, parameters: w.parameters.map(nativeParameter) };
    default:
      return base;
  }
}

function jsHead(e: WireEvent): Pick<SessionEvent, 'sessionId' | 'eventSeq' | 'timeUnixNano'> {
  return { sessionId: utf8(e.sessionId), eventSeq: jsUint64(e.eventSeq), timeUnixNano: e.timeUnixNano.toString() };
}

function nativeHead(e: WireEvent): object {
  return { sessionId: e.sessionId, eventSeq: e.eventSeq, timeUnixNano: e.timeUnixNano.toString() };
}

function jsStatement(s: WireStatement): SessionEvent['statement'] {
  const redact = redactorOf(s.parameters);
  return {
    text: utf8(s.text),
    parameters: s.parameters.map((p, i) => parameterDisplay(p.value, p.format, i, redact)),
    commandTag: utf8(s.commandTag),
    rows: jsUint64(s.rows),
    errorCode: utf8(s.errorCode),
    errorMessage: utf8(s.errorMessage),
    durationNano: s.durationNano.toString(),
    via: s.via,
    statementName: utf8(s.statementName),
    portal: utf8(s.portal),
    policy: s.policy ? { action: s.policy.action, rule: utf8(s.policy.rule), reason: utf8(s.policy.reason) } : null,
    result: s.result ? { columns: s.result.columns.map(utf8), rows: jsUint64(s.result.rows), maskedColumns: s.result.maskedColumns.map(utf8) } : null,
    classes: s.classes.map(utf8),
  };
}

function nativeStatement(s: WireStatement): object {
  return { ...s, parameters: s.parameters.map(nativeParameter), durationNano: s.durationNano.toString() };
}

function requestSuffixes(native: PgRecordsHook, e: WireEvent, messages: WireMessage[]): [Buffer, Buffer] {
  const js = recordSuffix(e.recordTime, {
    event: { ...jsHead(e), pgRequest: { messages: messages.map((m) => messageRecord(frontendMessage(m), m.withheld, redactorOf(m.parameters))) } },
  });
  const cc = native.encodePgRecordForTest('request', e.recordTime, { ...nativeHead(e), pgRequest: { messages: messages.map(nativeMessage) } });
  return [cc, js];
}

function outcomeSuffixes(native: PgRecordsHook, e: WireEvent, s: WireStatement): [Buffer, Buffer] {
  const js = recordSuffix(e.recordTime, { event: { ...jsHead(e), statement: jsStatement(s) } });
  const cc = native.encodePgRecordForTest('outcome', e.recordTime, { ...nativeHead(e), statement: nativeStatement(s) });
  return [cc, js];
}

function assertSame([cc, js]: [Buffer, Buffer], what: string): void {
  if (cc.equals(js)) return;
  let at = 0;
  while (at < cc.length && at < js.length && cc[at] === js[at]) at++;
  const around = (b: Buffer): string => b.subarray(Math.max(0, at - 16), at + 16).toString('hex');
  assert.fail(`${what}: C++ ${cc.length} bytes, JavaScript ${js.length}; first difference at ${at}: C++ …${around(cc)}… JavaScript …${around(js)}…`);
}

const text = (s: string): Buffer => Buffer.from(s, 'utf8');
const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ''), 'hex');

/** Each class of invalid UTF-8 that Buffer.toString('utf8') replaces with U+FFFD, and valid edges around it. */
const UTF8_CASES: Array<[string, Buffer]> = [
  ['2-byte é, 3-byte €, 4-byte 😀 and 𝄞', text('é € 😀 𝄞 ok')],
  ['the largest code point U+10FFFF and U+FFFD itself', hex('f48fbfbf efbfbd')],
  ['U+0000 and U+007F', hex('00 7f 41')],
  ['lone continuation bytes', hex('80 41 bf 42 80 80 80')],
  ['overlong 2-byte (C0, C1 leads)', hex('c0af c1bf 41')],
  ['overlong 3-byte (E0 80-9F)', hex('e080af e09fbf 41')],
  ['overlong 4-byte (F0 80-8F)', hex('f08080af f08fbfbf 41')],
  ['surrogates (ED A0-BF), a CESU-8 pair', hex('eda080 edbfbf eda0bdedb880 41')],
  ['beyond U+10FFFF (F4 90+, F5-F7)', hex('f4908080 f5808080 f7bfbfbf 41')],
  ['5- and 6-byte forms, FE, FF', hex('f888808080 fc8480808080 fe ff 41')],
  ['truncated at the end: 2-byte', hex('41 c3')],
  ['truncated at the end: 3-byte', hex('41 e282')],
  ['truncated at the end: 4-byte', hex('41 f09f98')],
  ['truncated before ASCII', hex('e282 41 f09f 42 c3 43')],
  ['truncated before a valid sequence', hex('f09f98 e282ac f0 f09f9880')],
  ['lead bytes in a row', hex('c3c3 e2e2 f0f0 f4f4')],
  ['a valid lead then a bad second byte', hex('e0 80 ed a0 f0 80 f4 90')],
  ['only invalid bytes', hex('ff fe fd fc f8 f5 c1 c0 bf 80')],
];

describe('gateway/journal PostgreSQL records in C++ (native/addon/pg-records.cc) against the JavaScript encoder', () => {
  it('a write-ahead request of every frontend message type messageRecord handles', function () {
    const native = requireNative.call(this);
    const params: WireParameter[] = [
      { value: text('42'), format: FormatCode.Text, redacted: false },
      { value: null, format: FormatCode.Text, redacted: false },
      { value: hex('00ff10'), format: FormatCode.Binary, redacted: false },
      { value: text('secret'), format: FormatCode.Text, redacted: true },
      { value: NONE, format: FormatCode.Text, redacted: false },
      { value: NONE, format: FormatCode.Binary, redacted: false },
    ];
    const all: WireMessage[] = [
      message(FrontendType.Query, { text: text('select 1') }),
      message(FrontendType.Parse, { name: text('s1'), text: text('select $1::int, $2'), parameterTypes: [23, 0] }),
      message(FrontendType.Bind, { name: text('s1'), portal: text('p1'), parameters: params }),
      message(FrontendType.Describe, { target: TargetKind.Statement, name: text('s1') }),
      message(FrontendType.Describe, { target: TargetKind.Portal, portal: text('p1') }),
      message(FrontendType.Execute, { portal: text('p1'), maxRows: 100 }),
      message(FrontendType.Close, { target: TargetKind.Statement, name: text('s1') }),
      message(FrontendType.Close, { target: TargetKind.Portal, portal: text('p1') }),
      message(FrontendType.FunctionCall, { functionOid: 1598, parameters: params }),
      message(FrontendType.CopyFail, { text: text('client gave up') }),
      message(FrontendType.CopyData, { text: text('1\tx\n') }),
      message(FrontendType.CopyDone),
      message(FrontendType.Flush),
      message(FrontendType.Sync),
      message(FrontendType.Terminate),
      message(FrontendType.Password, { text: text('not journaled') }),
    ];
    const types = new Set(all.map((m) => m.type));
    for (const type of Object.values(FrontendType)) if (typeof type === 'number') assert.ok(types.has(type), frontendTypeName(type));
    for (const withheld of [false, true]) {
      const messages = all.map((m) => ({ ...m, withheld }));
      assertSame(requestSuffixes(native, HEAD, messages), `all types, withheld ${withheld}`);
      for (const m of messages) assertSame(requestSuffixes(native, HEAD, [m]), `${frontendTypeName(m.type)} alone, withheld ${withheld}`);
      // Every field empty: only the type name (and withheld) remain.
      for (const m of messages) assertSame(requestSuffixes(native, HEAD, [message(m.type, { target: m.target, withheld })]), `empty ${frontendTypeName(m.type)}`);
    }
  });

  it('empty strings, zero and absent fields: defaults omitted, present messages and oneof members written', function () {
    const native = requireNative.call(this);
    const zero: WireEvent = { recordTime: 0n, sessionId: NONE, eventSeq: 0n, timeUnixNano: 0n };
    for (const head of [HEAD, zero]) {
      assertSame(requestSuffixes(native, head, []), 'a request without messages');
      assertSame(requestSuffixes(native, head, [message(FrontendType.Sync)]), 'one Sync');
      assertSame(outcomeSuffixes(native, head, statement({ via: '', result: null })), 'an outcome with every field at its default');
      assertSame(outcomeSuffixes(native, head, statement({ via: '' })), 'an empty result summary');
      const emptyPolicy = { action: 'POLICY_ACTION_UNSPECIFIED', rule: NONE, reason: NONE } as const;
      assertSame(outcomeSuffixes(native, head, statement({ policy: emptyPolicy })), 'an empty policy decision');
      assertSame(
        outcomeSuffixes(native, head, statement({ result: { columns: [NONE, text('b')], rows: 0n, maskedColumns: [NONE] }, classes: [NONE, text('read')] })),
        'empty strings in repeated fields',
      );
    }
    // Text '' and NULL are different parameters, and both are written.
    const texts = [NONE, null].map((value) => ({ value, format: FormatCode.Text, redacted: false }));
    const [cc, js] = requestSuffixes(native, HEAD, [message(FrontendType.Bind, { parameters: texts })]);
    assertSame([cc, js], 'text "" and NULL');
    const bind = decodeRecord(cc).event!.pgRequest!.messages[0]!;
    assert.deepEqual(bind.parameters.map((p) => p.value), ['text', 'null']);
    const outcome = decodeRecord(outcomeSuffixes(native, HEAD, statement({ policy: { action: 'POLICY_ACTION_UNSPECIFIED', rule: NONE, reason: NONE } }))[0]);
    assert.notEqual(outcome.event!.statement!.result, null, 'an empty result summary is present');
    assert.notEqual(outcome.event!.statement!.policy, null, 'an empty policy decision is present');
    assert.equal(decodeRecord(outcomeSuffixes(native, HEAD, statement({ result: null }))[0]).event!.statement!.result, null);
  });

  it('integers at their edges: max_rows, OIDs, event seqs, rows to 2^64-1, negative and huge times and durations', function () {
    const native = requireNative.call(this);
    const u32 = [0, 1, 127, 128, 16383, 16384, 0x7fffffff, 0x80000000, 0xffffffff];
    for (const n of u32) {
      assertSame(requestSuffixes(native, HEAD, [message(FrontendType.Execute, { portal: text('p'), maxRows: n })]), `maxRows ${n}`);
      assertSame(requestSuffixes(native, HEAD, [message(FrontendType.FunctionCall, { functionOid: n })]), `functionOid ${n}`);
    }
    assertSame(requestSuffixes(native, HEAD, [message(FrontendType.Parse, { parameterTypes: u32 })]), 'parameter types');
    const u64 = [0n, 1n, 127n, 128n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 53n - 1n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n];
    const i64 = [0n, 1n, -1n, -128n, 2n ** 53n + 1n, -(2n ** 53n) - 1n, 2n ** 63n - 1n, -(2n ** 63n)];
    for (const n of u64) {
      const head = { ...HEAD, eventSeq: n };
      assertSame(requestSuffixes(native, head, [message(FrontendType.Sync)]), `eventSeq ${n}`);
      assertSame(outcomeSuffixes(native, head, statement({ rows: n, result: { columns: [text('a')], rows: n, maskedColumns: [] } })), `rows ${n}`);
    }
    for (const n of i64) {
      const head = { ...HEAD, recordTime: n, timeUnixNano: n };
      assertSame(requestSuffixes(native, head, [message(FrontendType.Sync)]), `times ${n}`);
      assertSame(outcomeSuffixes(native, head, statement({ durationNano: n })), `durationNano ${n}`);
    }
  });

  it('lengths across varint boundaries: strings and nested messages of 127, 128, 16383 and 16384 bytes and more', function () {
    const native = requireNative.call(this);
    for (const length of [0, 1, 100, 120, 127, 128, 129, 200, 16_370, 16_383, 16_384, 70_000]) {
      const sql = Buffer.alloc(length, 'x');
      assertSame(requestSuffixes(native, HEAD, [message(FrontendType.Query, { text: sql })]), `query of ${length} bytes`);
      assertSame(
        requestSuffixes(native, HEAD, [message(FrontendType.Bind, { parameters: [{ value: sql, format: FormatCode.Binary, redacted: false }] })]),
        `binary parameter of ${length} bytes`,
      );
      assertSame(outcomeSuffixes(native, HEAD, statement({ text: sql, parameters: [{ value: sql, format: FormatCode.Text, redacted: false }] })), `statement of ${length} bytes`);
    }
  });

  it('unicode and every class of invalid UTF-8, in every string field', function () {
    const native = requireNative.call(this);
    for (const [name, bytes] of UTF8_CASES) {
      const textParameter = { value: bytes, format: FormatCode.Text, redacted: false };
      const head = { ...HEAD, sessionId: bytes };
      const request = [
        message(FrontendType.Query, { text: bytes }),
        message(FrontendType.Parse, { name: bytes, text: bytes }),
        message(FrontendType.Bind, { name: bytes, portal: bytes, parameters: [textParameter] }),
        message(FrontendType.Describe, { target: TargetKind.Portal, portal: bytes }),
        message(FrontendType.Execute, { portal: bytes }),
        message(FrontendType.FunctionCall, { functionOid: 1, parameters: [textParameter] }),
        message(FrontendType.CopyFail, { text: bytes }),
      ];
      const [cc, js] = requestSuffixes(native, head, request);
      assertSame([cc, js], name);
      assert.equal(decodeRecord(cc).event!.pgRequest!.messages[0]!.text, bytes.toString('utf8'), name);
      const outcome = statement({
        text: bytes,
        parameters: [textParameter],
        commandTag: bytes,
        errorCode: bytes,
        errorMessage: bytes,
        statementName: bytes,
        portal: bytes,
        policy: { action: 'POLICY_ACTION_ALLOW', rule: bytes, reason: bytes },
        result: { columns: [bytes], rows: 1n, maskedColumns: [bytes] },
        classes: [bytes],
      });
      assertSame(outcomeSuffixes(native, head, outcome), name);
    }
  });

  it('seeded random requests and outcomes with random bytes (mostly invalid UTF-8) match byte for byte', function () {
    const native = requireNative.call(this);
    const seed = 0x9e3779b9;
    const next = random(seed);
    const int = (n: number): number => Math.floor(next() * n);
    const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
    const pieces: Array<() => number[]> = [
      () => Array.from({ length: 1 + int(12) }, () => 0x20 + int(0x5f)), // ASCII
      () => [0xc2 + int(30), 0x80 + int(64)], // valid 2-byte
      () => [0xe1 + int(12), 0x80 + int(64), 0x80 + int(64)], // valid 3-byte
      () => [0xf0, 0x90 + int(48), 0x80 + int(64), 0x80 + int(64)], // valid 4-byte
      () => [0x80 + int(64)], // lone continuation
      () => [0xc0 + int(2), 0x80 + int(64)], // overlong 2-byte
      () => [0xe0, 0x80 + int(32), 0x80 + int(64)], // overlong 3-byte
      () => [0xf0, 0x80 + int(16), 0x80 + int(64), 0x80 + int(64)], // overlong 4-byte
      () => [0xed, 0xa0 + int(32), 0x80 + int(64)], // surrogate
      () => [0xf4, 0x90 + int(48), 0x80 + int(64), 0x80 + int(64)], // beyond U+10FFFF
      () => [0xf5 + int(11)], // never a lead byte
      () => [pick([0xc3, 0xe2, 0xf0, 0xf4]), ...(next() < 0.5 ? [0x80 + int(16)] : [])], // truncated
      () => [int(256)], // any byte, NUL included
    ];
    const bytes = (): Buffer => {
      const roll = next();
      const target = roll < 0.15 ? 0 : roll < 0.93 ? int(40) : roll < 0.995 ? 100 + int(300) : 16_000 + int(1_000);
      const out: number[] = [];
      while (out.length < target) out.push(...pick(pieces)());
      return Buffer.from(out);
    };
    const u64 = (): bigint => pick([0n, 1n, BigInt(int(1000)), BigInt(int(2 ** 31)), 2n ** 53n + BigInt(int(1000)), 2n ** 64n - 1n - BigInt(int(1000))]);
    const i64 = (): bigint => pick([0n, BigInt(int(2 ** 31)), -BigInt(int(2 ** 31)), 1_764_150_000_000_000_000n + BigInt(int(1e9)), -(2n ** 63n), 2n ** 63n - 1n]);
    const u32 = (): number => pick([0, int(128), int(2 ** 16), int(2 ** 31), 0xffffffff]);
    const parameter = (): WireParameter => ({
      value: next() < 0.15 ? null : bytes(),
      format: next() < 0.3 ? FormatCode.Binary : FormatCode.Text,
      redacted: next() < 0.15,
    });
    const list = <T>(max: number, item: () => T): T[] => Array.from({ length: int(max + 1) }, item);
    const types = Object.values(FrontendType).filter((t): t is FrontendType => typeof t === 'number');
    const head = (): WireEvent => ({ recordTime: i64(), sessionId: next() < 0.8 ? text(`01JPG${int(1e9)}`) : bytes(), eventSeq: u64(), timeUnixNano: i64() });
    const wireMessage = (): WireMessage =>
      message(pick(types), {
        withheld: next() < 0.3,
        text: bytes(),
        name: bytes(),
        portal: bytes(),
        target: next() < 0.5 ? TargetKind.Statement : TargetKind.Portal,
        parameters: list(4, parameter),
        parameterTypes: list(4, u32),
        maxRows: next() < 0.5 ? 0 : u32(),
        functionOid: u32(),
      });
    const actions: ActionName[] = ['POLICY_ACTION_UNSPECIFIED', 'POLICY_ACTION_ALLOW', 'POLICY_ACTION_DENY', 'POLICY_ACTION_REVIEW', 'POLICY_ACTION_TIMED_OUT'];
    const wireStatement = (): WireStatement =>
      statement({
        text: bytes(),
        parameters: list(4, parameter),
        commandTag: bytes(),
        rows: u64(),
        errorCode: bytes(),
        durationNano: i64(),
        errorMessage: bytes(),
        via: pick(['query', 'extended', 'function_call', '']),
        statementName: bytes(),
        portal: bytes(),
        policy: next() < 0.3 ? null : { action: pick(actions), rule: bytes(), reason: bytes() },
        result: next() < 0.1 ? null : { columns: list(3, bytes), rows: u64(), maskedColumns: list(2, bytes) },
        classes: list(3, bytes),
      });

    const rounds = 3_000;
    let prevHash = ZERO_HASH;
    for (let i = 0; i < rounds; i++) {
      const request = requestSuffixes(native, head(), list(6, wireMessage));
      assertSame(request, `seed ${seed}, request ${i}`);
      const outcome = outcomeSuffixes(native, head(), wireStatement());
      assertSame(outcome, `seed ${seed}, outcome ${i}`);
      if (i % 300 === 0) {
        // Chained as the journal chains them, they pass verifyJournal's per-record checks: the stored
        // bytes are the canonical encoding of the decoded record, and its hash is the record's hash.
        for (const [suffix, seq] of [[request[0], 2n * BigInt(i) + 1n], [outcome[0], 2n * BigInt(i) + 2n]] as const) {
          const { hash, encoded } = chainRecord('gw-test', seq, prevHash, suffix);
          const record = decodeRecord(encoded);
          assert.equal(record.body, 'event');
          assert.ok(encodeRecord(record).equals(encoded), `record ${seq} is canonical`);
          assert.ok(recordHash(record).equals(hash), `record ${seq} hashes`);
          prevHash = hash;
        }
      }
    }
  });

  it('policy decisions (a refusal as it is made), errors no statement owns and COPY transfers, hand-picked and seeded random, match byte for byte', function () {
    const native = requireNative.call(this);
    const actionNames = [
      'POLICY_ACTION_UNSPECIFIED',
      'POLICY_ACTION_ALLOW',
      'POLICY_ACTION_DENY',
      'POLICY_ACTION_APPROVED',
      'POLICY_ACTION_REJECTED',
      'POLICY_ACTION_MASK',
      'POLICY_ACTION_REVIEW',
      'POLICY_ACTION_TIMED_OUT',
    ] as const;
    const policyPair = (e: WireEvent, action: number, rule: Buffer, reason: Buffer, statementText: Buffer, classes: Buffer[], reviewer: Buffer = NONE, reviewId: Buffer = NONE): [Buffer, Buffer] => [
      native.encodePgRecordForTest('policy', e.recordTime, { ...nativeHead(e), policy: { action, rule, reason, statement: statementText, classes, reviewer, reviewId } }),
      recordSuffix(e.recordTime, {
        event: {
          ...jsHead(e),
          policy: { action: actionNames[action]!, rule: utf8(rule), reviewer: utf8(reviewer), reason: utf8(reason), reviewId: utf8(reviewId), statement: utf8(statementText), classes: classes.map(utf8) },
        },
      }),
    ];
    const errorPair = (e: WireEvent, code: Buffer, message: Buffer): [Buffer, Buffer] => [
      native.encodePgRecordForTest('error', e.recordTime, { ...nativeHead(e), error: { code, message } }),
      recordSuffix(e.recordTime, { event: { ...jsHead(e), error: { code: utf8(code), message: utf8(message) } } }),
    ];
    // As the gateway writes them: a denial, and an error answering a Bind.
    assertSame(policyPair(HEAD, 2, text('secrets-read-only'), text('secrets are read-only for agents'), text('DELETE FROM secrets'), [text('write')]), 'deny');
    assertSame(errorPair(HEAD, text('42P01'), text('relation "no_such_table" does not exist')), 'error');
    assertSame(policyPair(HEAD, 3, text('gapwatch:review-ddl'), text('schema changes need a human'), text('CREATE TABLE t (a int)'), [text('ddl')], text('alice'), text('rv-01')), 'approved review');
    assertSame(policyPair(HEAD, 0, NONE, NONE, NONE, []), 'all defaults: an empty policy message is still written');
    assertSame(policyPair(HEAD, 7, NONE, NONE, NONE, [NONE, NONE]), 'empty classes are entries');
    assertSame(errorPair(HEAD, NONE, NONE), 'an empty error message is still written');
    for (const [name, bytes] of UTF8_CASES) {
      assertSame(policyPair(HEAD, 6, bytes, bytes, bytes, [bytes]), `policy, ${name}`);
      assertSame(errorPair(HEAD, bytes, bytes), `error, ${name}`);
    }
    const next = random(0x51ed);
    const int = (n: number): number => Math.floor(next() * n);
    const bytes = (): Buffer => Buffer.from(Array.from({ length: next() < 0.2 ? 0 : int(next() < 0.95 ? 40 : 400) }, () => (next() < 0.7 ? 0x20 + int(0x5f) : int(256))));
    const copyPair = (e: WireEvent, c: { direction: Buffer; rows: bigint; bytes: bigint; statement: Buffer; errorCode: Buffer; errorMessage: Buffer }): [Buffer, Buffer] => [
      native.encodePgRecordForTest('copy', e.recordTime, { ...nativeHead(e), copy: c }),
      recordSuffix(e.recordTime, {
        event: { ...jsHead(e), copy: { direction: utf8(c.direction), rows: jsUint64(c.rows), bytes: jsUint64(c.bytes), statement: utf8(c.statement), errorCode: utf8(c.errorCode), errorMessage: utf8(c.errorMessage) } },
      }),
    ];
    assertSame(copyPair(HEAD, { direction: text('in'), rows: 3n, bytes: 24n, statement: text('COPY copy_target FROM STDIN'), errorCode: NONE, errorMessage: NONE }), 'copy in');
    assertSame(copyPair(HEAD, { direction: NONE, rows: 0n, bytes: 0n, statement: NONE, errorCode: NONE, errorMessage: NONE }), 'an empty copy message is still written');
    for (let i = 0; i < 1_000; i++) {
      const e: WireEvent = { recordTime: BigInt(int(2 ** 31)) * 1_000_000_000n, sessionId: bytes(), eventSeq: BigInt(int(2 ** 31)), timeUnixNano: BigInt(int(2 ** 31)) };
      assertSame(policyPair(e, int(8), bytes(), bytes(), bytes(), Array.from({ length: int(4) }, bytes), bytes(), bytes()), `policy ${i}`);
      assertSame(errorPair(e, bytes(), bytes()), `error ${i}`);
      const big = (): bigint => (next() < 0.5 ? BigInt(int(2 ** 31)) : 2n ** 64n - 1n - BigInt(int(1000)));
      assertSame(copyPair(e, { direction: bytes(), rows: big(), bytes: big(), statement: bytes(), errorCode: bytes(), errorMessage: bytes() }), `copy ${i}`);
    }
  });
});
