#ifndef GAPWATCH_HTTP_FRAMING_H
#define GAPWATCH_HTTP_FRAMING_H

// HTTP/1.1 message framing for the HTTP gateway's native data path (RFC 9112; field semantics RFC 9110).
// Pure functions, no I/O. The native path serves a conservative subset of requests and hands every
// other connection back to the JavaScript listener (gateway/http/listener.ts), so on the request side
// nothing here answers errors: what it accepts it reads exactly as Node's llhttp, listener.ts's
// readHeads()/checkRequest() and request-target.ts's parseRequestTarget() read it, and anything else
// is HandBack. A parity test (test/gateway/http/http-framing.test.ts) holds both sides together.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gapwatch::http {

struct HeaderField {
  std::string_view name;
  std::string_view value;  // without leading/trailing SP/HTAB (as llhttp gives it)
};

enum class HeadStatus { Incomplete, Ok, HandBack };

// Node's server copies at most 2000 rawHeaders entries (1000 fields) into req.headers, where its
// Host check looks: a longer head is left to the JavaScript path.
constexpr size_t kMaxRequestFields = 1000;

struct RequestHead {
  size_t head_bytes = 0;  // through the CRLF CRLF
  std::string_view method, target;
  int version_minor = 1;             // HTTP/1.<minor>
  std::vector<HeaderField> fields;   // in order (cleared and refilled by the parser; reuse across calls)
  // readHeads() of listener.ts, in the same pass:
  std::string_view host;
  int hosts = 0;
  std::string_view authorization;  // the first one
  bool has_authorization = false;
  std::string_view content_length;  // the first one
  int content_lengths = 0;
  int transfer_encodings = 0;
  int expects = 0;
  int upgrades = 0;
  std::string_view content_type;  // the first one
  bool has_content_type = false;
  std::string connection;        // values joined with ", " (as readHeads)
  std::string content_encoding;  // values joined with ", "
  bool has_connection = false, has_content_encoding = false;
};

// Reads a request head from the start of data. Ok: `out` describes it and its head_bytes. Incomplete:
// no CRLF CRLF yet, and nothing so far disqualifies it. HandBack: outside the subset (only GET HEAD POST
// PUT PATCH DELETE OPTIONS, origin-form targets of bytes 0x21-0x7E, HTTP/1.1, CRLF line ends, token
// names with no space before ':', values of HTAB/SP/VCHAR/obs-text, no obs-fold), or a head of
// max_header_bytes or more — Node's maxHeaderSize counts fewer bytes of the same head, so whatever
// Node refuses is handed back, and a little that Node would take.
HeadStatus parse_request_head(const char* data, size_t size, size_t max_header_bytes, RequestHead& out);

// True when the native path may forward the request as it is: one Host; no Transfer-Encoding, Expect or
// Upgrade; Connection absent or just "keep-alive" or "close" (any case); Content-Length absent, or once,
// of 1 to 15 digits and at most both limits. content_length_out/has_body_length: its value, when given.
bool fast_path_request(const RequestHead& head, uint64_t max_body_bytes, uint64_t buffer_body_bytes, uint64_t& content_length_out,
                       bool& has_body_length);

// parseRequestTarget() of request-target.ts: the normalised path and the query (a view into target,
// without '?'). False wherever that throws.
bool normalise_target(std::string_view target, std::string& path, std::string_view& query);

// An upstream's forwarding constants (UpstreamTarget of upstream-request.ts).
struct ForwardTarget {
  std::string upstream_host_header;   // target.url.host
  std::vector<std::string> dropped;   // lower-case names: HOP_BY_HOP, AGENT_ONLY, the credential's header
};

ForwardTarget make_forward_target(std::string_view url_host, std::string_view credential_header_name);

// forwardHeaders() of upstream-request.ts with keepUpgrade false: the same names, values and order,
// as views into head, target, the arguments and scratch (which holds the Content-Length digits; keep
// it unchanged while `out` is used). credential_name empty: the resource adds no credential;
// credential_value is the whole value ("<scheme> <secret>").
void forward_headers(std::vector<std::pair<std::string_view, std::string_view>>& out, const RequestHead& head, const ForwardTarget& target,
                     std::string_view client_ip, bool secure, std::optional<uint64_t> content_length, std::string_view credential_name,
                     std::string_view credential_value, std::string& scratch);

// The Content-Length forwarded with a complete body of body_length bytes (exchange() of listener.ts):
// none for an empty body of a method that has none unless it says so.
std::optional<uint64_t> forwarded_content_length(std::string_view method, uint64_t body_length);

// How the body of a response is delimited (RFC 9112 §6.3).
enum class BodyFraming { None, Length, Chunked, UntilClose };

struct ResponseHead {
  size_t head_bytes = 0;
  int status = 0;
  std::string_view reason;
  int version_minor = 1;
  std::vector<HeaderField> fields;
  BodyFraming framing = BodyFraming::None;
  uint64_t content_length = 0;  // with BodyFraming::Length
  bool close = false;           // Connection: close, or HTTP/1.0 without keep-alive
};

enum class ResponseStatus { Incomplete, Ok, Bad };

// Reads an upstream's response head (to a request of request_method). Interim 1xx responses come back
// Ok with status < 200 and no body: the caller skips them and reads on (101 is Bad: nothing here asks to
// switch protocols). Bad, with `error` saying why, on anything malformed or ambiguous, and on a head of
// max_header_bytes or more.
ResponseStatus parse_response_head(const char* data, size_t size, size_t max_header_bytes, std::string_view request_method, ResponseHead& out,
                                   std::string& error);

// responseHeaders(rawHeaders, false) of upstream-request.ts: the fields passed to the agent, in order.
void response_headers(std::vector<HeaderField>& out, const ResponseHead& head);

// Follows a chunked body (RFC 9112 §7.1) through its last chunk, trailer section and final CRLF,
// reporting the chunk data, so a relayed response can be recorded as it passes.
class ChunkedScanner {
 public:
  // A chunk-size line (with its extensions) and the trailer section may be this long at most.
  static constexpr size_t kMaxLineBytes = 4096;
  static constexpr size_t kMaxTrailerBytes = 16384;

  // Consumes up to n bytes, reporting each run of chunk data through on_data(const char*, size_t);
  // returns the bytes consumed. After done() nothing more is consumed (the rest belongs to the next
  // message); after bad() neither, and error() says what was wrong.
  template <class F>
  size_t feed(const char* p, size_t n, F&& on_data) {
    size_t at = 0;
    while (at < n && state_ != State::Done && state_ != State::Bad) {
      if (state_ == State::Data) {
        const size_t take = remaining_ < n - at ? static_cast<size_t>(remaining_) : n - at;
        on_data(p + at, take);
        at += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::DataCr;
        continue;
      }
      step(static_cast<unsigned char>(p[at]));
      if (state_ != State::Bad) at++;
    }
    return at;
  }

  bool done() const { return state_ == State::Done; }
  bool bad() const { return state_ == State::Bad; }
  const std::string& error() const { return error_; }
  void reset();

 private:
  // The chunk-size line's states come first and the trailer section's last: step() counts their bytes by range.
  enum class State {
    Size,            // chunk-size hex digits
    ExtBws,          // BWS, which must lead to a ';'
    ExtSemicolonWs,  // BWS after ';'
    ExtName,
    ExtNameWs,       // BWS after a name: '=' or ';' next
    ExtEqualsWs,     // BWS after '='
    ExtToken,
    ExtQuoted,
    ExtQuotedPair,
    ExtAfterQuoted,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,    // a field line, or the final CRLF
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
    Bad,
  };

  void step(unsigned char c);
  void fail(const char* message);

  State state_ = State::Size;
  uint64_t remaining_ = 0;
  size_t digits_ = 0;
  size_t line_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  std::string error_;
};

}  // namespace gapwatch::http

#endif
