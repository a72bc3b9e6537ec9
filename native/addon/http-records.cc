#include "http-records.h"

#include <algorithm>
#include <utility>

#include "proto-writer.h"

namespace gapwatch::httprec {

namespace {

using eventrec::begin_event;
using protowire::delimited;
using protowire::FieldWriter;
using protowire::varint_field;

// SessionEvent
constexpr uint32_t kEventHttp = delimited(13);
constexpr uint32_t kEventHttpRequest = delimited(40);  // two-byte tag: 0xc2 0x02
// HttpRequest
constexpr uint32_t kRequestExchangeId = varint_field(1);
constexpr uint32_t kRequestMethod = delimited(2);
constexpr uint32_t kRequestPath = delimited(3);
constexpr uint32_t kRequestQuery = delimited(4);
constexpr uint32_t kRequestHost = delimited(5);
constexpr uint32_t kRequestHttpVersion = delimited(6);
constexpr uint32_t kRequestHeaders = delimited(7);
constexpr uint32_t kRequestBody = delimited(8);
constexpr uint32_t kRequestPolicyRule = delimited(9);
constexpr uint32_t kRequestUpgrade = varint_field(10);
// HttpHeader
constexpr uint32_t kHeaderName = delimited(1);
constexpr uint32_t kHeaderValue = delimited(2);
// HttpBody
constexpr uint32_t kBodyContentType = delimited(1);
constexpr uint32_t kBodySize = varint_field(2);
constexpr uint32_t kBodyTruncated = varint_field(3);
constexpr uint32_t kBodyText = delimited(4);  // oneof content
constexpr uint32_t kBodyData = delimited(5);  // oneof content
constexpr uint32_t kBodyOmitted = varint_field(6);
constexpr uint32_t kBodyInRequestRecord = varint_field(7);
// HttpExchange
constexpr uint32_t kExchangeMethod = delimited(1);
constexpr uint32_t kExchangePath = delimited(2);
constexpr uint32_t kExchangeStatus = varint_field(3);
constexpr uint32_t kExchangeRequestBytes = varint_field(4);
constexpr uint32_t kExchangeResponseBytes = varint_field(5);
constexpr uint32_t kExchangeQuery = delimited(6);
constexpr uint32_t kExchangeExchangeId = varint_field(7);
constexpr uint32_t kExchangeResponseHeaders = delimited(8);
constexpr uint32_t kExchangeRequestBody = delimited(9);
constexpr uint32_t kExchangeResponseBody = delimited(10);
constexpr uint32_t kExchangeDuration = varint_field(11);
constexpr uint32_t kExchangeFirstByte = varint_field(12);
constexpr uint32_t kExchangeError = delimited(14);
constexpr uint32_t kExchangePolicy = delimited(15);
constexpr uint32_t kExchangeRequestHeaders = delimited(16);
constexpr uint32_t kExchangePolicyRule = delimited(17);

constexpr std::string_view kRedacted = "[redacted]";  // REDACTED in audit-format.ts
constexpr std::string_view kAuthorization = "authorization";

// String.prototype.toLowerCase() of a latin1 character: A-Z and À-Þ (but ×) move up by 0x20; no
// other latin1 character has a different lower case within latin1 (ß, ÿ have none at all).
unsigned char lower_latin1(unsigned char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 0xc0 && c <= 0xde && c != 0xd7)) return static_cast<unsigned char>(c + 0x20);
  return c;
}

// `name` lower-cased into `scratch`, as toLowerCase() does a latin1 string.
std::string_view lower_case(std::string_view name, std::string& scratch) {
  scratch.assign(name);
  for (char& c : scratch) c = static_cast<char>(lower_latin1(static_cast<unsigned char>(c)));
  return scratch;
}

// The characters String.prototype.trim() removes that latin1 has: TAB, LF, VT, FF, CR, SP and NBSP.
bool trimmed_latin1(unsigned char c) { return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0xa0; }

bool contains(const NameSet& names, std::string_view name) {
  const auto at = std::lower_bound(names.begin(), names.end(), name, [](const std::string& a, std::string_view b) { return a < b; });
  return at != names.end() && *at == name;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_alpha(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// ^([A-Za-z][A-Za-z0-9._~+-]*) matched against an Authorization value: the scheme, or empty.
std::string_view authorization_scheme(std::string_view value) {
  if (value.empty() || !is_alpha(static_cast<unsigned char>(value[0]))) return {};
  std::size_t n = 1;
  for (; n < value.size(); n++) {
    const auto c = static_cast<unsigned char>(value[n]);
    if (!is_alpha(c) && !(c >= '0' && c <= '9') && c != '.' && c != '_' && c != '~' && c != '+' && c != '-') break;
  }
  return n < value.size() && value[n] == ' ' ? value.substr(0, n) : std::string_view();
}

void write_header(FieldWriter& w, uint32_t tag, const RecordedHeader& header, std::string& scratch) {
  const std::size_t at = w.begin(tag);
  w.latin1(kHeaderName, lower_case(header.name, scratch));
  switch (header.kind) {
    case HeaderValue::AsSent:
      w.latin1(kHeaderValue, header.value);
      break;
    case HeaderValue::Redacted:
      w.entry(kHeaderValue, kRedacted);
      break;
    case HeaderValue::SchemeRedacted: {
      const std::size_t value = w.begin(kHeaderValue);
      w.raw(header.value);  // ASCII: the scheme's pattern admits nothing else
      w.raw(" ");
      w.raw(kRedacted);
      w.end(value);
      break;
    }
  }
  w.end(at);
}

void write_headers(FieldWriter& w, uint32_t tag, const std::vector<RecordedHeader>& headers) {
  std::string scratch;
  for (const RecordedHeader& header : headers) write_header(w, tag, header, scratch);
}

// The kept excerpt with each secret, in turn, replaced by "[redacted]" wherever it occurs (left to
// right, not overlapping: Buffer indexOf from the end of the last match); `scratch` holds the result
// when anything was replaced.
std::string_view without_secrets(std::string_view content, const std::vector<std::string>& secrets, std::string& scratch) {
  std::string next;
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    std::size_t at = content.find(secret);
    if (at == std::string_view::npos) continue;
    next.clear();
    std::size_t from = 0;
    for (; at != std::string_view::npos; at = content.find(secret, from)) {
      next.append(content.substr(from, at - from));
      next.append(kRedacted);
      from = at + secret.size();
    }
    next.append(content.substr(from));
    scratch.swap(next);
    content = scratch;
  }
  return content;
}

// HttpBody, as BodyRecorder.snapshot() makes it; written (present) even when every field is a default.
void write_body(FieldWriter& w, uint32_t tag, const BodyExcerpt& body) {
  const std::size_t at = w.begin(tag);
  w.latin1(kBodyContentType, body.content_type());
  w.integer(kBodySize, body.size());
  if (body.mode() == BodyExcerpt::Mode::Omit) {
    w.flag(kBodyOmitted, body.size() > 0);
  } else {
    w.flag(kBodyTruncated, body.size() > body.kept().size());
    std::string scratch;
    const std::string_view content = without_secrets(body.kept(), body.secrets(), scratch);
    if (body.mode() == BodyExcerpt::Mode::Text) w.entry(kBodyText, content);
    else w.bytes_entry(kBodyData, content);
  }
  w.end(at);
}

// An exchange's request body whose excerpt its HttpRequest record holds: type and size only.
void write_body_reference(FieldWriter& w, uint32_t tag, const BodyExcerpt& body) {
  const std::size_t at = w.begin(tag);
  w.latin1(kBodyContentType, body.content_type());
  w.integer(kBodySize, body.size());
  w.flag(kBodyInRequestRecord, true);
  w.end(at);
}

}  // namespace

NameSet make_name_set(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

bool is_textual(std::string_view content_type) {
  // contentType.split(';', 1)[0].trim().toLowerCase()
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && trimmed_latin1(static_cast<unsigned char>(media.front()))) media.remove_prefix(1);
  while (!media.empty() && trimmed_latin1(static_cast<unsigned char>(media.back()))) media.remove_suffix(1);
  std::string lower;
  // TEXTUAL_MEDIA_TYPES in gateway/http/protocol.ts; non-ASCII characters never lower-case to ASCII,
  // so comparing bytes is comparing the strings.
  static constexpr std::string_view kTextual[] = {
      "application/json",        "application/xml",     "application/x-www-form-urlencoded", "application/javascript",
      "application/graphql",     "application/x-ndjson", "application/yaml",
  };
  const std::string_view m = lower_case(media, lower);
  if (m.substr(0, 5) == "text/" || ends_with(m, "+json") || ends_with(m, "+xml")) return true;
  return std::find(std::begin(kTextual), std::end(kTextual), m) != std::end(kTextual);
}

void record_headers(std::vector<RecordedHeader>& out, const HeaderPair* raw, std::size_t n, const NameSet& selected,
                    const NameSet& redacted) {
  std::string scratch;  // reused: the lower-cased name, for the look-ups
  for (std::size_t i = 0; i < n; i++) {
    const std::string_view name = lower_case(raw[i].name, scratch);
    if (!contains(selected, name)) continue;
    RecordedHeader header{raw[i].name, raw[i].value, HeaderValue::AsSent};
    if (contains(redacted, name)) {
      const std::string_view scheme = ends_with(name, kAuthorization) ? authorization_scheme(raw[i].value) : std::string_view();
      header.value = scheme;
      header.kind = scheme.empty() ? HeaderValue::Redacted : HeaderValue::SchemeRedacted;
    }
    out.push_back(header);
  }
}

BodyExcerpt::BodyExcerpt(std::string_view content_type, std::string_view content_encoding, uint64_t limit, bool binary_bodies,
                         std::vector<std::string> secrets)
    : content_type_(content_type), limit_(limit), secrets_(std::move(secrets)) {
  // contentEncoding.toLowerCase() !== 'identity': only ASCII letters lower-case to ASCII in latin1.
  constexpr std::string_view kIdentity = "identity";
  bool identity = content_encoding.size() == kIdentity.size();
  for (std::size_t i = 0; identity && i < kIdentity.size(); i++) {
    identity = lower_latin1(static_cast<unsigned char>(content_encoding[i])) == static_cast<unsigned char>(kIdentity[i]);
  }
  const bool encoded = !content_encoding.empty() && !identity;
  if (limit == 0) mode_ = Mode::Omit;
  else if (!encoded && is_textual(content_type)) mode_ = Mode::Text;
  else mode_ = binary_bodies ? Mode::Data : Mode::Omit;
}

void BodyExcerpt::push(const char* data, std::size_t length) {
  size_ += length;
  if (mode_ == Mode::Omit || kept_.size() >= limit_) return;
  const std::size_t take = static_cast<std::size_t>(std::min<uint64_t>(length, limit_ - kept_.size()));
  kept_.append(data, take);
}

void append_request_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const eventrec::EventHead& event,
                           const RequestRecord& request) {
  FieldWriter w(out);
  const std::size_t at = begin_event(w, record_time_unix_nano, event);
  const std::size_t record = w.begin(kEventHttpRequest);
  w.integer(kRequestExchangeId, request.exchange_id);
  w.latin1(kRequestMethod, request.method);
  w.latin1(kRequestPath, request.path);
  w.latin1(kRequestQuery, request.query);
  w.latin1(kRequestHost, request.host);
  w.latin1(kRequestHttpVersion, request.http_version);
  write_headers(w, kRequestHeaders, request.headers);
  if (request.body != nullptr) write_body(w, kRequestBody, *request.body);
  w.string(kRequestPolicyRule, request.policy_rule);
  w.flag(kRequestUpgrade, request.upgrade);
  w.end(record);
  w.end(at);
}

void append_exchange_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const eventrec::EventHead& event,
                            const ExchangeRecord& exchange) {
  FieldWriter w(out);
  const std::size_t at = begin_event(w, record_time_unix_nano, event);
  const std::size_t record = w.begin(kEventHttp);
  const ExchangeResponse* response = exchange.response ? &*exchange.response : nullptr;
  w.latin1(kExchangeMethod, exchange.method);
  w.latin1(kExchangePath, exchange.path);
  w.integer(kExchangeStatus, exchange.status);
  if (exchange.request_body != nullptr) w.integer(kExchangeRequestBytes, exchange.request_body->size());
  if (response != nullptr && response->body != nullptr) w.integer(kExchangeResponseBytes, response->body->size());
  w.latin1(kExchangeQuery, exchange.query);
  w.integer(kExchangeExchangeId, exchange.exchange_id);
  if (response != nullptr) write_headers(w, kExchangeResponseHeaders, response->headers);
  if (exchange.request_body != nullptr) {
    if (exchange.request_body_in_record) write_body_reference(w, kExchangeRequestBody, *exchange.request_body);
    else write_body(w, kExchangeRequestBody, *exchange.request_body);
  }
  if (response != nullptr && response->body != nullptr) write_body(w, kExchangeResponseBody, *response->body);
  w.integer(kExchangeDuration, static_cast<uint64_t>(exchange.duration_nano));
  if (response != nullptr) w.integer(kExchangeFirstByte, static_cast<uint64_t>(response->first_byte_nano));
  w.string(kExchangeError, exchange.error);
  if (exchange.policy) {
    const ExchangePolicy& policy = *exchange.policy;
    eventrec::write_policy_decision(w, kExchangePolicy, policy.decision, policy.statement, policy.classes);
  }
  write_headers(w, kExchangeRequestHeaders, exchange.request_headers);
  w.string(kExchangePolicyRule, exchange.policy_rule);
  w.end(record);
  w.end(at);
}

}  // namespace gapwatch::httprec
