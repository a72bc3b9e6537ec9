#include "pg-records.h"

#include <cstring>

// The canonical encoding's rules (gateway/journal/canonical-encoding.ts) as they apply to these
// records: fields in ascending number order; implicit-presence fields (strings, integers, bools,
// repeated) omitted when they hold the proto3 default; message fields and oneof members written
// whenever present, an empty one as a zero-length field; repeated strings and messages one entry
// per element, empty elements included; repeated integers packed; minimal varints, negative int64
// as ten-byte two's complement.
namespace gapwatch::pgrec {

namespace {

constexpr uint32_t varint_field(uint32_t number) { return number << 3; }
constexpr uint32_t delimited(uint32_t number) { return number << 3 | 2; }

// JournalRecord
constexpr uint32_t kRecordTime = varint_field(5);
constexpr uint32_t kRecordEvent = delimited(11);
// SessionEvent
constexpr uint32_t kEventSessionId = delimited(1);
constexpr uint32_t kEventSeq = varint_field(2);
constexpr uint32_t kEventTime = varint_field(3);
constexpr uint32_t kEventStatement = delimited(10);
constexpr uint32_t kEventError = delimited(14);
constexpr uint32_t kEventPolicy = delimited(11);
constexpr uint32_t kEventPgRequest = delimited(20);
constexpr uint32_t kEventCopy = delimited(21);  // two-byte tag: 0xa2 0x01
// PgRequest
constexpr uint32_t kRequestMessages = delimited(1);
// PgMessage
constexpr uint32_t kMessageType = delimited(1);
constexpr uint32_t kMessageText = delimited(2);
constexpr uint32_t kMessageStatementName = delimited(3);
constexpr uint32_t kMessagePortal = delimited(4);
constexpr uint32_t kMessageParameters = delimited(5);
constexpr uint32_t kMessageMaxRows = varint_field(6);
constexpr uint32_t kMessageFunctionOid = varint_field(7);
constexpr uint32_t kMessageParameterTypes = delimited(8);  // packed
constexpr uint32_t kMessageWithheld = varint_field(9);
// PgParameter: oneof value
constexpr uint32_t kParameterText = delimited(1);
constexpr uint32_t kParameterHex = delimited(2);
constexpr uint32_t kParameterNull = varint_field(3);
constexpr uint32_t kParameterRedacted = varint_field(4);
// Statement
constexpr uint32_t kStatementText = delimited(1);
constexpr uint32_t kStatementParameters = delimited(2);
constexpr uint32_t kStatementCommandTag = delimited(3);
constexpr uint32_t kStatementRows = varint_field(4);
constexpr uint32_t kStatementErrorCode = delimited(5);
constexpr uint32_t kStatementDuration = varint_field(6);
constexpr uint32_t kStatementErrorMessage = delimited(7);
constexpr uint32_t kStatementVia = delimited(8);
constexpr uint32_t kStatementStatementName = delimited(9);
constexpr uint32_t kStatementPortal = delimited(10);
constexpr uint32_t kStatementPolicy = delimited(11);
constexpr uint32_t kStatementResult = delimited(12);
constexpr uint32_t kStatementClasses = delimited(13);
// PolicyDecision
constexpr uint32_t kPolicyAction = varint_field(1);
constexpr uint32_t kPolicyRule = delimited(2);
constexpr uint32_t kPolicyReason = delimited(4);
// ResultSummary
constexpr uint32_t kResultColumns = delimited(1);
constexpr uint32_t kResultRows = varint_field(2);
constexpr uint32_t kResultMaskedColumns = delimited(3);

constexpr unsigned char kReplacement[] = {0xef, 0xbf, 0xbd};  // U+FFFD
constexpr char kHexDigits[] = "0123456789abcdef";
constexpr std::string_view kNullDisplay = "NULL";
constexpr std::string_view kRedactedDisplay = "[redacted]";  // REDACTED in audit-format.ts

// The UTF-8 sequence at p (p < end, *p >= 0x80) as the WHATWG decoder reads it, which V8 and so
// Buffer.toString('utf8') follow: returns its length and sets *valid, or, for an invalid sequence,
// the length of its maximal subpart (at least 1), which decodes to one U+FFFD. Lead bytes C0, C1
// and F5-FF start nothing (overlong or beyond U+10FFFF); the second byte's range excludes the
// overlong forms after E0 and F0, the surrogates D800-DFFF after ED, and code points above
// U+10FFFF after F4. A byte that breaks a sequence is not part of its subpart: it is read again.
std::size_t utf8_sequence(const unsigned char* p, const unsigned char* end, bool* valid) {
  const unsigned char lead = *p;
  std::size_t continuations;
  unsigned char lower = 0x80;
  unsigned char upper = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    continuations = 1;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    continuations = 2;
    if (lead == 0xe0) lower = 0xa0;
    if (lead == 0xed) upper = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    continuations = 3;
    if (lead == 0xf0) lower = 0x90;
    if (lead == 0xf4) upper = 0x8f;
  } else {
    *valid = false;
    return 1;
  }
  for (std::size_t n = 1; n <= continuations; n++) {
    if (p + n == end || p[n] < lower || p[n] > upper) {
      *valid = false;
      return n;
    }
    lower = 0x80;
    upper = 0xbf;
  }
  *valid = true;
  return continuations + 1;
}

// `bytes` as Buffer.toString('utf8') decodes them, re-encoded (what Buffer.write gives back):
// valid runs copied as they are, each maximal invalid subpart replaced by U+FFFD.
void append_node_utf8(std::vector<unsigned char>& out, std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned char* const end = p + bytes.size();
  const unsigned char* run = p;
  while (p < end) {
    if (*p < 0x80) {
      p++;
      continue;
    }
    bool valid;
    const std::size_t length = utf8_sequence(p, end, &valid);
    if (!valid) {
      out.insert(out.end(), run, p);
      out.insert(out.end(), kReplacement, kReplacement + sizeof kReplacement);
      run = p + length;
    }
    p += length;
  }
  out.insert(out.end(), run, end);
}

void append_hex(std::vector<unsigned char>& out, std::string_view bytes) {
  const std::size_t at = out.size();
  out.resize(at + 2 * bytes.size());
  unsigned char* hex = out.data() + at;
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    *hex++ = kHexDigits[byte >> 4];
    *hex++ = kHexDigits[byte & 0x0f];
  }
}

// Appends protobuf fields to the caller's buffer. A length-delimited field whose length is not known
// up front (a nested message, a decoded string) reserves one length byte and moves its content along
// when the length needs more (128 bytes and up), as the JavaScript ByteSink does: most fields are short.
class FieldWriter {
 public:
  explicit FieldWriter(std::vector<unsigned char>& out) : out_(out) {}

  void varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<unsigned char>(value | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<unsigned char>(value));
  }

  // An implicit-presence integer: omitted when 0. int64 values come cast to uint64 (two's complement).
  void integer(uint32_t tag, uint64_t value) {
    if (value == 0) return;
    varint(tag);
    varint(value);
  }

  void flag(uint32_t tag, bool value) {
    if (!value) return;
    varint(tag);
    varint(1);
  }

  // An implicit-presence string: omitted when empty (bytes decode to "" only when there are none).
  void string(uint32_t tag, std::string_view bytes) {
    if (!bytes.empty()) entry(tag, bytes);
  }

  // A string written even when empty: an element of a repeated field, a oneof member.
  void entry(uint32_t tag, std::string_view bytes) {
    const std::size_t at = begin(tag);
    append_node_utf8(out_, bytes);
    end(at);
  }

  void raw(std::string_view bytes) { out_.insert(out_.end(), bytes.begin(), bytes.end()); }

  // Starts a length-delimited field; returns where its content starts, for end().
  std::size_t begin(uint32_t tag) {
    varint(tag);
    out_.push_back(0);
    return out_.size();
  }

  void end(std::size_t start) {
    const std::size_t length = out_.size() - start;
    if (length < 0x80) {
      out_[start - 1] = static_cast<unsigned char>(length);
      return;
    }
    unsigned char head[10];
    std::size_t n = 0;
    std::size_t rest = length;
    for (; rest >= 0x80; rest >>= 7) head[n++] = static_cast<unsigned char>(rest | 0x80);
    head[n++] = static_cast<unsigned char>(rest);
    out_.insert(out_.begin() + static_cast<std::ptrdiff_t>(start), n - 1, 0);
    std::memcpy(out_.data() + start - 1, head, n);
  }

  std::vector<unsigned char>& out() { return out_; }

 private:
  std::vector<unsigned char>& out_;
};

// PgParameter, as parameterRecord() makes it: one oneof member, written even when "" or false.
void write_parameter(FieldWriter& w, const Parameter& parameter) {
  const std::size_t at = w.begin(kMessageParameters);
  switch (parameter.kind) {
    case ParameterKind::Text:
      w.entry(kParameterText, parameter.value);
      break;
    case ParameterKind::Binary: {
      w.varint(kParameterHex);
      w.varint(2 * static_cast<uint64_t>(parameter.value.size()));
      append_hex(w.out(), parameter.value);
      break;
    }
    case ParameterKind::Null:
      w.varint(kParameterNull);
      w.varint(1);
      break;
    case ParameterKind::Redacted:
      w.varint(kParameterRedacted);
      w.varint(1);
      break;
  }
  w.end(at);
}

// A Statement parameter, as parameterDisplay() shows it.
void write_parameter_display(FieldWriter& w, const Parameter& parameter) {
  switch (parameter.kind) {
    case ParameterKind::Text:
      w.entry(kStatementParameters, parameter.value);
      break;
    case ParameterKind::Binary: {
      w.varint(kStatementParameters);
      w.varint(2 + 2 * static_cast<uint64_t>(parameter.value.size()));
      w.raw("\\x");
      append_hex(w.out(), parameter.value);
      break;
    }
    case ParameterKind::Null:
      w.entry(kStatementParameters, kNullDisplay);
      break;
    case ParameterKind::Redacted:
      w.entry(kStatementParameters, kRedactedDisplay);
      break;
  }
}

void write_message(FieldWriter& w, const PgMessage& message) {
  const std::size_t at = w.begin(kRequestMessages);
  w.string(kMessageType, message.type);
  w.string(kMessageText, message.text);
  w.string(kMessageStatementName, message.statement_name);
  w.string(kMessagePortal, message.portal);
  for (const Parameter& parameter : message.parameters) write_parameter(w, parameter);
  w.integer(kMessageMaxRows, message.max_rows);
  w.integer(kMessageFunctionOid, message.function_oid);
  if (!message.parameter_types.empty()) {
    const std::size_t types = w.begin(kMessageParameterTypes);
    for (const uint32_t oid : message.parameter_types) w.varint(oid);
    w.end(types);
  }
  w.flag(kMessageWithheld, message.withheld);
  w.end(at);
}

void write_statement(FieldWriter& w, const StatementOutcome& s) {
  const std::size_t at = w.begin(kEventStatement);
  w.string(kStatementText, s.text);
  for (const Parameter& parameter : s.parameters) write_parameter_display(w, parameter);
  w.string(kStatementCommandTag, s.command_tag);
  w.integer(kStatementRows, s.rows);
  w.string(kStatementErrorCode, s.error_code);
  w.integer(kStatementDuration, static_cast<uint64_t>(s.duration_nano));
  w.string(kStatementErrorMessage, s.error_message);
  w.string(kStatementVia, s.via);
  w.string(kStatementStatementName, s.statement_name);
  w.string(kStatementPortal, s.portal);
  if (s.policy) {
    const std::size_t policy = w.begin(kStatementPolicy);
    w.integer(kPolicyAction, static_cast<uint32_t>(s.policy->action));
    w.string(kPolicyRule, s.policy->rule);
    w.string(kPolicyReason, s.policy->reason);
    w.end(policy);
  }
  if (s.result) {
    const std::size_t result = w.begin(kStatementResult);
    for (const std::string_view column : s.result->columns) w.entry(kResultColumns, column);
    w.integer(kResultRows, s.result->rows);
    for (const std::string_view column : s.result->masked_columns) w.entry(kResultMaskedColumns, column);
    w.end(result);
  }
  for (const std::string_view name : s.classes) w.entry(kStatementClasses, name);
  w.end(at);
}

// The record's time, then body.event up to its detail; returns where the event's content starts.
std::size_t begin_event(FieldWriter& w, int64_t record_time_unix_nano, const EventHead& event) {
  w.integer(kRecordTime, static_cast<uint64_t>(record_time_unix_nano));
  const std::size_t at = w.begin(kRecordEvent);
  w.string(kEventSessionId, event.session_id);
  w.integer(kEventSeq, event.event_seq);
  w.integer(kEventTime, static_cast<uint64_t>(event.time_unix_nano));
  return at;
}

}  // namespace

void append_request_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const EventHead& event,
                           const PgMessage* messages, std::size_t message_count) {
  FieldWriter w(out);
  const std::size_t at = begin_event(w, record_time_unix_nano, event);
  const std::size_t request = w.begin(kEventPgRequest);
  for (std::size_t i = 0; i < message_count; i++) write_message(w, messages[i]);
  w.end(request);
  w.end(at);
}

void append_outcome_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const EventHead& event,
                           const StatementOutcome& statement) {
  FieldWriter w(out);
  const std::size_t at = begin_event(w, record_time_unix_nano, event);
  write_statement(w, statement);
  w.end(at);
}

void append_policy_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const EventHead& event,
                          const PolicyDecision& decision, std::string_view statement, const std::vector<std::string_view>& classes) {
  FieldWriter w(out);
  const std::size_t at = begin_event(w, record_time_unix_nano, event);
  const std::size_t policy = w.begin(kEventPolicy);
  w.integer(kPolicyAction, static_cast<uint64_t>(decision.action));
  w.string(kPolicyRule, decision.rule);
  w.string(3 << 3 | 2, decision.reviewer);   // PolicyDecision.reviewer
  w.string(kPolicyReason, decision.reason);
  w.string(5 << 3 | 2, decision.review_id);  // PolicyDecision.review_id
  w.string(6 << 3 | 2, statement);  // PolicyDecision.statement
  for (std::string_view c : classes) w.entry(7 << 3 | 2, c);  // PolicyDecision.classes
  w.end(policy);
  w.end(at);
}

void append_copy_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const EventHead& event,
                        const CopyTransfer& copy) {
  FieldWriter w(out);
  const std::size_t at = begin_event(w, record_time_unix_nano, event);
  const std::size_t transfer = w.begin(kEventCopy);
  w.string(1 << 3 | 2, copy.direction);      // CopyTransfer.direction
  w.integer(2 << 3, copy.rows);              // .rows
  w.integer(3 << 3, copy.bytes);             // .bytes
  w.string(4 << 3 | 2, copy.statement);      // .statement
  w.string(5 << 3 | 2, copy.error_code);     // .error_code
  w.string(6 << 3 | 2, copy.error_message);  // .error_message
  w.end(transfer);
  w.end(at);
}

void append_error_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const EventHead& event,
                         std::string_view code, std::string_view message) {
  FieldWriter w(out);
  const std::size_t at = begin_event(w, record_time_unix_nano, event);
  const std::size_t error = w.begin(kEventError);
  w.string(1 << 3 | 2, code);     // SessionError.code
  w.string(2 << 3 | 2, message);  // SessionError.message
  w.end(error);
  w.end(at);
}

}  // namespace gapwatch::pgrec
