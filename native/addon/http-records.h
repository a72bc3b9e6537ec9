#ifndef GAPWATCH_HTTP_RECORDS_H
#define GAPWATCH_HTTP_RECORDS_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "session-event.h"

// The two journal records the HTTP gateway writes per exchange, encoded in C++ for the native data
// path: the write-ahead HttpRequest and the HttpExchange outcome (proto/gapwatch/v1/http.proto,
// session.proto), with the header selection and body excerpt they carry (recordHeaders() and
// BodyRecorder in gateway/http/audit-format.ts). The output is the record's suffix, the bytes
// JournalChain::append takes, byte for byte what recordSuffix() makes of the record the JavaScript
// listener builds (requestRecord(), exchangeRecord() in audit-format.ts); see pg-records.h.
//
// Strings are given as the bytes received and written as the JavaScript gateway decodes them
// (proto-writer.h): what Node's HTTP parser hands over — the method, the request target (and so
// path and query), the version, header names and values — is latin1, one character per byte;
// what the gateway itself makes — session id, error, rule names, policy texts — is UTF-8.
namespace gapwatch::httprec {

// Lower-case header names as latin1 bytes, sorted and without duplicates (make_name_set): the
// configured names to record, or to redact. A configured name with a character above U+00FF can
// never match a header (Node's parser gives latin1) and is left out.
using NameSet = std::vector<std::string>;

NameSet make_name_set(std::vector<std::string> names);

// Whether a body of this Content-Type (latin1 bytes) is recorded as text: text/*, JSON, XML, forms,
// and their +json/+xml kin (isTextual in audit-format.ts).
bool is_textual(std::string_view content_type);

// A header as received: views of the raw bytes, the value without the whitespace around it (as
// llhttp hands it to Node, and Node's rawHeaders hold it).
struct HeaderPair {
  std::string_view name;
  std::string_view value;
};

// How a recorded header's value is written.
enum class HeaderValue : uint8_t {
  AsSent,          // `value`
  Redacted,        // "[redacted]"
  SchemeRedacted,  // `value` holds an Authorization scheme: "<scheme> [redacted]"
};

// One header as recordHeaders() journals it. Both views point into the HeaderPair's bytes, which must
// outlive the encoding: `name` is written lower-cased.
struct RecordedHeader {
  std::string_view name;
  std::string_view value;
  HeaderValue kind = HeaderValue::AsSent;
};

// recordHeaders(): appends the headers among `raw` whose lower-cased names are `selected`, in the order
// sent, their values redacted when their names are `redacted` (a name ending in "authorization" keeps
// its value's scheme, ^[A-Za-z][A-Za-z0-9._~+-]* followed by a space).
void record_headers(std::vector<RecordedHeader>& out, const HeaderPair* raw, std::size_t n, const NameSet& selected,
                    const NameSet& redacted);

// BodyRecorder: keeps the first `limit` bytes of a body as it streams past and counts the rest. A
// textual, unencoded body is journaled as text (decoded as UTF-8, a cut inside a sequence marked by
// U+FFFD); others as bytes when `binary_bodies`, else only sized. `secrets` (byte strings the gateway
// injected) are replaced by "[redacted]" in the kept excerpt, one after the other, when it is encoded.
class BodyExcerpt {
 public:
  enum class Mode : uint8_t { Text, Data, Omit };

  BodyExcerpt(std::string_view content_type, std::string_view content_encoding, uint64_t limit, bool binary_bodies,
              std::vector<std::string> secrets = {});

  void push(const char* data, std::size_t length);

  // Bytes seen.
  uint64_t size() const { return size_; }
  Mode mode() const { return mode_; }
  std::string_view content_type() const { return content_type_; }  // latin1
  std::string_view kept() const { return kept_; }                  // before the secrets' replacement
  const std::vector<std::string>& secrets() const { return secrets_; }

 private:
  std::string content_type_;
  uint64_t limit_;
  Mode mode_;
  std::vector<std::string> secrets_;
  std::string kept_;
  uint64_t size_ = 0;
};

// An HttpRequest as requestRecord() (gateway/http/audit-format.ts) makes it.
struct RequestRecord {
  uint32_t exchange_id = 0;
  std::string_view method;        // latin1 (llhttp's method token)
  std::string_view path;          // latin1: ASCII, as parseRequestTarget() normalised it
  std::string_view query;         // latin1: ASCII, without '?'
  std::string_view host;          // latin1: the first Host header's value
  std::string_view http_version;  // latin1: "1.1", "1.0"
  std::vector<RecordedHeader> headers;
  const BodyExcerpt* body = nullptr;  // present (the excerpt read so far) or absent (an upgrade)
  std::string_view policy_rule;       // UTF-8
  bool upgrade = false;
};

// PolicyDecision as holdForReview() (gateway/http/listener.ts) makes it; strings are UTF-8.
struct ExchangePolicy {
  eventrec::PolicyDecision decision;
  std::string_view statement;
  std::vector<std::string_view> classes;
};

// The upstream's answer, when one arrived.
struct ExchangeResponse {
  std::vector<RecordedHeader> headers;
  const BodyExcerpt* body = nullptr;  // always there (its size is response_bytes); nullptr: absent
  int64_t first_byte_nano = 0;
};

// An HttpExchange as exchangeRecord() (gateway/http/audit-format.ts) makes it for Exchange.record().
struct ExchangeRecord {
  std::string_view method;  // latin1
  std::string_view path;    // latin1
  uint32_t status = 0;
  std::string_view query;   // latin1
  uint32_t exchange_id = 0;
  const BodyExcerpt* request_body = nullptr;  // always there (its size is request_bytes); nullptr: absent
  // The request record written ahead holds the whole body's excerpt: request_body is written with its
  // type and size only, marked in_request_record (exchangeRecord() in audit-format.ts).
  bool request_body_in_record = false;
  std::optional<ExchangeResponse> response;
  int64_t duration_nano = 0;
  std::string_view error;                 // UTF-8
  std::optional<ExchangePolicy> policy;   // a review's decision
  std::vector<RecordedHeader> request_headers;  // without a write-ahead request record
  std::string_view policy_rule;           // UTF-8, likewise
};

// Appends the suffix of { time_unix_nano, event: { …head, http_request } } to `out`.
void append_request_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const eventrec::EventHead& event,
                           const RequestRecord& request);

// Appends the suffix of { time_unix_nano, event: { …head, http } } to `out`.
void append_exchange_record(std::vector<unsigned char>& out, int64_t record_time_unix_nano, const eventrec::EventHead& event,
                            const ExchangeRecord& exchange);

}  // namespace gapwatch::httprec

#endif  // GAPWATCH_HTTP_RECORDS_H
