#include "http-records-binding.h"

#include <deque>
#include <string>
#include <vector>

#include "http-records.h"
#include "record-input.h"

namespace {

namespace httprec = gapwatch::httprec;

// Parity-test hook, not part of the gateway's contract: the one way JavaScript reaches http-records.cc,
// so test/gateway/journal/http-records.test.ts can compare its bytes with recordSuffix(). It takes what
// arrived on the wire and the recording options, and runs the header selection and body excerpts in
// C++ too, as the native data path will.
//
// encodeHttpRecordForTest(kind: 'request' | 'exchange', timeUnixNano: bigint, event, options): Buffer
//
// options: { recordedHeaders: string[], redactedHeaders: string[], bodyBytes: number, binaryBodies: boolean }
//   (gateway.http.record: the names as configured; one with a character above U+00FF matches no header)
// event: { sessionId, eventSeq, timeUnixNano, httpRequest | http }
//   httpRequest: { exchangeId, method, path, query, host, httpVersion, rawHeaders, body: Body | null,
//                  policyRule, upgrade }
//   http: { method, path, status, query, exchangeId, requestBody: Body | null, requestBodyInRecord,
//           response: { rawHeaders, body: Body | null, firstByteNano } | null, durationNano, error,
//           policy: { action: number, rule, reviewer, reason, reviewId, statement, classes } | null,
//           requestRawHeaders, policyRule }
//   Body: { contentType, contentEncoding, chunks: Buffer[], secrets: Buffer[] } — the body's header
//   values and its bytes as they streamed past
//   rawHeaders: [name, value, name, value …] as received (Buffers; an odd last entry is ignored)
// Strings are Buffers of raw bytes or strings (their UTF-8 bytes); integers numbers, bigints or
// decimal strings (record-input.h).
class HttpRecordInput : public gapwatch::RecordInput {
 public:
  HttpRecordInput(Napi::Env env, const Napi::Object& options)
      : RecordInput(env),
        selected_(names(options.Get("recordedHeaders"), "options.recordedHeaders")),
        redacted_(names(options.Get("redactedHeaders"), "options.redactedHeaders")),
        limit_(uint64(options.Get("bodyBytes"), "options.bodyBytes")),
        binary_bodies_(is_true(options.Get("binaryBodies"))) {}

  std::vector<httprec::RecordedHeader> headers(const Napi::Value& value, const std::string& what) {
    const std::vector<std::string_view> raw = strings(value, what);
    std::vector<httprec::HeaderPair> pairs;
    for (std::size_t i = 0; i + 1 < raw.size(); i += 2) pairs.push_back({raw[i], raw[i + 1]});
    std::vector<httprec::RecordedHeader> out;
    httprec::record_headers(out, pairs.data(), pairs.size(), selected_, redacted_);
    return out;
  }

  // The body's excerpt after its chunks were pushed; nullptr when `value` is absent.
  const httprec::BodyExcerpt* body(const Napi::Value& value, const std::string& what) {
    if (!present(value)) return nullptr;
    Napi::Object source = object(value, what);
    std::vector<std::string> secrets;
    for (const std::string_view secret : strings(source.Get("secrets"), what + ".secrets")) secrets.emplace_back(secret);
    httprec::BodyExcerpt& excerpt =
        bodies_.emplace_back(bytes(source.Get("contentType"), what + ".contentType"),
                             bytes(source.Get("contentEncoding"), what + ".contentEncoding"), limit_, binary_bodies_, std::move(secrets));
    for (const std::string_view chunk : strings(source.Get("chunks"), what + ".chunks")) excerpt.push(chunk.data(), chunk.size());
    return &excerpt;
  }

 private:
  // Configured names as latin1 bytes, as the lower-cased header names they are compared with.
  httprec::NameSet names(const Napi::Value& value, const std::string& what) {
    std::vector<std::string> out;
    Napi::Array items = array(value, what);
    for (uint32_t i = 0; i < items.Length(); i++) {
      if (!items.Get(i).IsString()) throw Napi::TypeError::New(env(), what + "[] must be a string");
      const std::u16string name = items.Get(i).As<Napi::String>().Utf16Value();
      std::string latin1;
      bool fits = true;
      for (const char16_t c : name) {
        fits = fits && c <= 0xff;
        latin1.push_back(static_cast<char>(c));
      }
      if (fits) out.push_back(std::move(latin1));
    }
    return httprec::make_name_set(std::move(out));
  }

  httprec::NameSet selected_;
  httprec::NameSet redacted_;
  uint64_t limit_;
  bool binary_bodies_;
  std::deque<httprec::BodyExcerpt> bodies_;  // a deque keeps them in place
};

httprec::RequestRecord request_record(HttpRecordInput& in, const Napi::Value& value) {
  const std::string what = "event.httpRequest";
  Napi::Object source = in.object(value, what);
  httprec::RequestRecord r;
  r.exchange_id = in.uint32(source.Get("exchangeId"), what + ".exchangeId");
  r.method = in.bytes(source.Get("method"), what + ".method");
  r.path = in.bytes(source.Get("path"), what + ".path");
  r.query = in.bytes(source.Get("query"), what + ".query");
  r.host = in.bytes(source.Get("host"), what + ".host");
  r.http_version = in.bytes(source.Get("httpVersion"), what + ".httpVersion");
  r.headers = in.headers(source.Get("rawHeaders"), what + ".rawHeaders");
  r.body = in.body(source.Get("body"), what + ".body");
  r.policy_rule = in.bytes(source.Get("policyRule"), what + ".policyRule");
  r.upgrade = HttpRecordInput::is_true(source.Get("upgrade"));
  return r;
}

httprec::ExchangeRecord exchange_record(HttpRecordInput& in, const Napi::Value& value) {
  const std::string what = "event.http";
  Napi::Object source = in.object(value, what);
  httprec::ExchangeRecord x;
  x.method = in.bytes(source.Get("method"), what + ".method");
  x.path = in.bytes(source.Get("path"), what + ".path");
  x.status = in.uint32(source.Get("status"), what + ".status");
  x.query = in.bytes(source.Get("query"), what + ".query");
  x.exchange_id = in.uint32(source.Get("exchangeId"), what + ".exchangeId");
  x.request_body = in.body(source.Get("requestBody"), what + ".requestBody");
  x.request_body_in_record = source.Get("requestBodyInRecord").ToBoolean();
  if (HttpRecordInput::present(source.Get("response"))) {
    Napi::Object response = in.object(source.Get("response"), what + ".response");
    x.response = httprec::ExchangeResponse{in.headers(response.Get("rawHeaders"), what + ".response.rawHeaders"),
                                           in.body(response.Get("body"), what + ".response.body"),
                                           in.int64(response.Get("firstByteNano"), what + ".response.firstByteNano")};
  }
  x.duration_nano = in.int64(source.Get("durationNano"), what + ".durationNano");
  x.error = in.bytes(source.Get("error"), what + ".error");
  if (HttpRecordInput::present(source.Get("policy"))) {
    Napi::Object policy = in.object(source.Get("policy"), what + ".policy");
    httprec::ExchangePolicy p;
    p.decision.action = static_cast<gapwatch::eventrec::PolicyAction>(in.uint32(policy.Get("action"), "policy.action"));
    p.decision.rule = in.bytes(policy.Get("rule"), "policy.rule");
    p.decision.reviewer = in.bytes(policy.Get("reviewer"), "policy.reviewer");
    p.decision.reason = in.bytes(policy.Get("reason"), "policy.reason");
    p.decision.review_id = in.bytes(policy.Get("reviewId"), "policy.reviewId");
    p.statement = in.bytes(policy.Get("statement"), "policy.statement");
    p.classes = in.strings(policy.Get("classes"), "policy.classes");
    x.policy = std::move(p);
  }
  x.request_headers = in.headers(source.Get("requestRawHeaders"), what + ".requestRawHeaders");
  x.policy_rule = in.bytes(source.Get("policyRule"), what + ".policyRule");
  return x;
}

Napi::Value EncodeHttpRecordForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kind = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (kind != "request" && kind != "exchange") throw Napi::TypeError::New(env, "kind must be 'request' or 'exchange'");
  if (info.Length() < 2 || !info[1].IsBigInt()) throw Napi::TypeError::New(env, "timeUnixNano must be a bigint");
  bool lossless = false;
  const int64_t record_time = info[1].As<Napi::BigInt>().Int64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(env, "timeUnixNano must fit in 64 signed bits");
  gapwatch::RecordInput args(env);
  Napi::Object event = args.object(info.Length() > 2 ? info[2] : env.Undefined(), "event");
  HttpRecordInput in(env, args.object(info.Length() > 3 ? info[3] : env.Undefined(), "options"));
  gapwatch::eventrec::EventHead head;
  head.session_id = in.bytes(event.Get("sessionId"), "event.sessionId");
  head.event_seq = in.uint64(event.Get("eventSeq"), "event.eventSeq");
  head.time_unix_nano = in.int64(event.Get("timeUnixNano"), "event.timeUnixNano");

  std::vector<unsigned char> out;
  if (kind == "request") {
    httprec::append_request_record(out, record_time, head, request_record(in, event.Get("httpRequest")));
  } else {
    httprec::append_exchange_record(out, record_time, head, exchange_record(in, event.Get("http")));
  }
  return Napi::Buffer<unsigned char>::Copy(env, out.data(), out.size());
}

}  // namespace

namespace gapwatch {

void register_http_records_test_hook(Napi::Env env, Napi::Object exports) {
  exports.Set("encodeHttpRecordForTest", Napi::Function::New<EncodeHttpRecordForTest>(env, "encodeHttpRecordForTest"));
}

}  // namespace gapwatch
