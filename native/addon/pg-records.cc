#include "pg-records.h"

#include "proto-writer.h"
#include "session-event.h"

// The canonical encoding's rules (proto-writer.h) as they apply to these records; repeated integers
// are packed.
namespace gapwatch::pgrec {

namespace {

using eventrec::begin_event;
using eventrec::write_policy_decision;
using protowire::delimited;
using protowire::FieldWriter;
using protowire::varint_field;

// SessionEvent
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
// ResultSummary
constexpr uint32_t kResultColumns = delimited(1);
constexpr uint32_t kResultRows = varint_field(2);
constexpr uint32_t kResultMaskedColumns = delimited(3);

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr std::string_view kNullDisplay = "NULL";
constexpr std::string_view kRedactedDisplay = "[redacted]";  // REDACTED in audit-format.ts

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
  // finishRun sets action, rule and reason only; a decision's other fields are empty here.
  if (s.policy) write_policy_decision(w, kStatementPolicy, {s.policy->action, s.policy->rule, {}, s.policy->reason, {}}, {}, {});
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
  write_policy_decision(w, kEventPolicy, decision, statement, classes);
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
