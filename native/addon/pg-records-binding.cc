#include "pg-records-binding.h"

#include <string>
#include <vector>

#include "pg-records.h"
#include "record-input.h"

namespace {

// Parity-test hook, not part of the gateway's contract: the one way JavaScript reaches pg-records.cc,
// so test/gateway/journal/pg-records.test.ts can compare its bytes with recordSuffix().
//
// encodePgRecordForTest(kind: 'request' | 'outcome' | 'policy' | 'error' | 'copy', timeUnixNano: bigint, event): Buffer
// ('policy': event.policy = { action: number, rule, reason, statement, classes }; 'error': event.error =
// { code, message }; 'copy': event.copy = { direction, rows, bytes, statement, errorCode, errorMessage })
//
// `event` has the shape the JavaScript proxy journals ({ sessionId, eventSeq, timeUnixNano,
// pgRequest: { messages } } or { …, statement }), except that any string may be a Buffer of raw wire
// bytes, which the encoder decodes as Node would; parameters (of PgMessage and Statement alike) are
// { text: Buffer } | { hex: Buffer } | { null: true } | { redacted: true } holding the raw value (for
// hex, the binary value itself), or a plain string for a text value. Integers are numbers, bigints or
// decimal strings; absent fields are defaults (record-input.h).
class PgRecordInput : public gapwatch::RecordInput {
 public:
  using RecordInput::RecordInput;

  std::vector<uint32_t> oids(const Napi::Value& value, const std::string& what) {
    std::vector<uint32_t> out;
    Napi::Array items = array(value, what);
    for (uint32_t i = 0; i < items.Length(); i++) out.push_back(uint32(items.Get(i), what + "[]"));
    return out;
  }

  std::vector<gapwatch::pgrec::Parameter> parameters(const Napi::Value& value, const std::string& what) {
    using gapwatch::pgrec::ParameterKind;
    std::vector<gapwatch::pgrec::Parameter> out;
    Napi::Array items = array(value, what);
    for (uint32_t i = 0; i < items.Length(); i++) {
      const Napi::Value item = items.Get(i);
      if (item.IsString()) {
        out.push_back({ParameterKind::Text, bytes(item, what)});
        continue;
      }
      Napi::Object parameter = object(item, what + "[]");
      if (parameter.Has("text")) {
        out.push_back({ParameterKind::Text, bytes(parameter.Get("text"), what + "[].text")});
      } else if (parameter.Has("hex") && !parameter.Get("hex").IsString()) {
        out.push_back({ParameterKind::Binary, bytes(parameter.Get("hex"), what + "[].hex")});
      } else if (is_true(parameter.Get("null"))) {
        out.push_back({ParameterKind::Null, {}});
      } else if (is_true(parameter.Get("redacted"))) {
        out.push_back({ParameterKind::Redacted, {}});
      } else {
        throw Napi::TypeError::New(env(), what + "[] must be { text | hex: Buffer } or { null | redacted: true }");
      }
    }
    return out;
  }
};

gapwatch::pgrec::PolicyAction policy_action(PgRecordInput& in, const Napi::Value& value) {
  // Indexed by the enum's wire value.
  static const char* const kNames[] = {
      "POLICY_ACTION_UNSPECIFIED", "POLICY_ACTION_ALLOW",  "POLICY_ACTION_DENY",   "POLICY_ACTION_APPROVED",
      "POLICY_ACTION_REJECTED",    "POLICY_ACTION_MASK",   "POLICY_ACTION_REVIEW", "POLICY_ACTION_TIMED_OUT",
  };
  if (!PgRecordInput::present(value)) return gapwatch::pgrec::PolicyAction::Unspecified;
  const std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : std::string();
  for (uint32_t i = 0; i < sizeof kNames / sizeof kNames[0]; i++) {
    if (name == kNames[i]) return static_cast<gapwatch::pgrec::PolicyAction>(i);
  }
  throw Napi::TypeError::New(in.env(), "statement.policy.action must be a PolicyAction name");
}

gapwatch::pgrec::PgMessage pg_message(PgRecordInput& in, const Napi::Value& value) {
  const std::string what = "event.pgRequest.messages[]";
  Napi::Object source = in.object(value, what);
  gapwatch::pgrec::PgMessage message;
  message.type = in.bytes(source.Get("type"), what + ".type");
  message.withheld = source.Get("withheld").ToBoolean().Value();
  message.text = in.bytes(source.Get("text"), what + ".text");
  message.statement_name = in.bytes(source.Get("statementName"), what + ".statementName");
  message.portal = in.bytes(source.Get("portal"), what + ".portal");
  message.parameters = in.parameters(source.Get("parameters"), what + ".parameters");
  message.max_rows = in.uint32(source.Get("maxRows"), what + ".maxRows");
  message.function_oid = in.uint32(source.Get("functionOid"), what + ".functionOid");
  message.parameter_types = in.oids(source.Get("parameterTypes"), what + ".parameterTypes");
  return message;
}

gapwatch::pgrec::StatementOutcome statement_outcome(PgRecordInput& in, const Napi::Value& value) {
  Napi::Object source = in.object(value, "event.statement");
  gapwatch::pgrec::StatementOutcome s;
  s.text = in.bytes(source.Get("text"), "statement.text");
  s.parameters = in.parameters(source.Get("parameters"), "statement.parameters");
  s.command_tag = in.bytes(source.Get("commandTag"), "statement.commandTag");
  s.rows = in.uint64(source.Get("rows"), "statement.rows");
  s.error_code = in.bytes(source.Get("errorCode"), "statement.errorCode");
  s.duration_nano = in.int64(source.Get("durationNano"), "statement.durationNano");
  s.error_message = in.bytes(source.Get("errorMessage"), "statement.errorMessage");
  s.via = in.bytes(source.Get("via"), "statement.via");
  s.statement_name = in.bytes(source.Get("statementName"), "statement.statementName");
  s.portal = in.bytes(source.Get("portal"), "statement.portal");
  if (PgRecordInput::present(source.Get("policy"))) {
    Napi::Object policy = in.object(source.Get("policy"), "statement.policy");
    gapwatch::pgrec::PolicyDecision decision;
    decision.action = policy_action(in, policy.Get("action"));
    decision.rule = in.bytes(policy.Get("rule"), "statement.policy.rule");
    decision.reason = in.bytes(policy.Get("reason"), "statement.policy.reason");
    s.policy = decision;
  }
  if (PgRecordInput::present(source.Get("result"))) {
    Napi::Object result = in.object(source.Get("result"), "statement.result");
    s.result = gapwatch::pgrec::ResultSummary{in.strings(result.Get("columns"), "result.columns"),
                                              in.uint64(result.Get("rows"), "result.rows"),
                                              in.strings(result.Get("maskedColumns"), "result.maskedColumns")};
  }
  s.classes = in.strings(source.Get("classes"), "statement.classes");
  return s;
}

Napi::Value EncodePgRecordForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kind = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (kind != "request" && kind != "outcome" && kind != "policy" && kind != "error" && kind != "copy") {
    throw Napi::TypeError::New(env, "kind must be 'request', 'outcome', 'policy', 'error' or 'copy'");
  }
  if (info.Length() < 2 || !info[1].IsBigInt()) throw Napi::TypeError::New(env, "timeUnixNano must be a bigint");
  bool lossless = false;
  const int64_t record_time = info[1].As<Napi::BigInt>().Int64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(env, "timeUnixNano must fit in 64 signed bits");
  PgRecordInput in(env);
  Napi::Object event = in.object(info.Length() > 2 ? info[2] : env.Undefined(), "event");
  gapwatch::pgrec::EventHead head;
  head.session_id = in.bytes(event.Get("sessionId"), "event.sessionId");
  head.event_seq = in.uint64(event.Get("eventSeq"), "event.eventSeq");
  head.time_unix_nano = in.int64(event.Get("timeUnixNano"), "event.timeUnixNano");

  std::vector<unsigned char> out;
  if (kind == "request") {
    const Napi::Value list = in.object(event.Get("pgRequest"), "event.pgRequest").Get("messages");
    if (!list.IsArray()) throw Napi::TypeError::New(env, "event.pgRequest.messages must be an array");
    Napi::Array items = list.As<Napi::Array>();
    std::vector<gapwatch::pgrec::PgMessage> messages;
    for (uint32_t i = 0; i < items.Length(); i++) messages.push_back(pg_message(in, items.Get(i)));
    gapwatch::pgrec::append_request_record(out, record_time, head, messages.data(), messages.size());
  } else if (kind == "outcome") {
    gapwatch::pgrec::append_outcome_record(out, record_time, head, statement_outcome(in, event.Get("statement")));
  } else if (kind == "policy") {
    Napi::Object source = in.object(event.Get("policy"), "event.policy");
    gapwatch::pgrec::PolicyDecision decision;
    decision.action = static_cast<gapwatch::pgrec::PolicyAction>(in.uint64(source.Get("action"), "policy.action"));
    decision.rule = in.bytes(source.Get("rule"), "policy.rule");
    decision.reason = in.bytes(source.Get("reason"), "policy.reason");
    decision.reviewer = in.bytes(source.Get("reviewer"), "policy.reviewer");
    decision.review_id = in.bytes(source.Get("reviewId"), "policy.reviewId");
    gapwatch::pgrec::append_policy_record(out, record_time, head, decision, in.bytes(source.Get("statement"), "policy.statement"),
                                          in.strings(source.Get("classes"), "policy.classes"));
  } else if (kind == "copy") {
    Napi::Object source = in.object(event.Get("copy"), "event.copy");
    gapwatch::pgrec::CopyTransfer copy;
    copy.direction = in.bytes(source.Get("direction"), "copy.direction");
    copy.rows = in.uint64(source.Get("rows"), "copy.rows");
    copy.bytes = in.uint64(source.Get("bytes"), "copy.bytes");
    copy.statement = in.bytes(source.Get("statement"), "copy.statement");
    copy.error_code = in.bytes(source.Get("errorCode"), "copy.errorCode");
    copy.error_message = in.bytes(source.Get("errorMessage"), "copy.errorMessage");
    gapwatch::pgrec::append_copy_record(out, record_time, head, copy);
  } else {
    Napi::Object source = in.object(event.Get("error"), "event.error");
    gapwatch::pgrec::append_error_record(out, record_time, head, in.bytes(source.Get("code"), "error.code"),
                                         in.bytes(source.Get("message"), "error.message"));
  }
  return Napi::Buffer<unsigned char>::Copy(env, out.data(), out.size());
}

}  // namespace

namespace gapwatch {

void register_pg_records_test_hook(Napi::Env env, Napi::Object exports) {
  exports.Set("encodePgRecordForTest", Napi::Function::New<EncodePgRecordForTest>(env, "encodePgRecordForTest"));
}

}  // namespace gapwatch
