#include "http-framing.h"

#include <array>
#include <cstring>
#include <limits>

// RFC 9112 (HTTP/1.1 message syntax): §3 request line, §4 status line, §5 field lines, §6.3 message body
// length, §7.1 chunked transfer coding. RFC 9110 §5.6.2 tokens, §5.5 field values.

namespace gapwatch::http {

namespace {

enum ByteClass : uint8_t {
  kTchar = 1,       // RFC 9110 §5.6.2 token character
  kFieldByte = 2,   // field-value byte: HTAB, SP, VCHAR, obs-text (RFC 9110 §5.5)
  kHex = 4,
  kQdtext = 8,      // quoted-string text (RFC 9110 §5.6.4): HTAB, SP, '!', '#'-'[', ']'-'~', obs-text
};

constexpr std::array<uint8_t, 256> make_byte_classes() {
  std::array<uint8_t, 256> classes{};
  for (int c = 0; c < 256; c++) {
    uint8_t bits = 0;
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (alnum) bits |= kTchar;
    for (const char* p = "!#$%&'*+-.^_`|~"; *p != '\0'; p++) {
      if (c == *p) bits |= kTchar;
    }
    if (c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80) bits |= kFieldByte;
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f')) bits |= kHex;
    if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80) bits |= kQdtext;
    classes[c] = bits;
  }
  return classes;
}

constexpr std::array<uint8_t, 256> kByteClasses = make_byte_classes();

inline bool is(unsigned char c, ByteClass cls) { return (kByteClasses[c] & cls) != 0; }
inline bool is_ows(unsigned char c) { return c == ' ' || c == '\t'; }
inline unsigned char ascii_lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 0x20 : c; }

// ASCII case-insensitive equality with a lower-case name.
bool equals_lower(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (size_t i = 0; i < text.size(); i++) {
    if (ascii_lower(static_cast<unsigned char>(text[i])) != static_cast<unsigned char>(lower[i])) return false;
  }
  return true;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (ascii_lower(static_cast<unsigned char>(a[i])) != ascii_lower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

// What String.prototype.trim() strips from a latin1 string (Node decodes field values as latin1):
// HTAB, LF, VT, FF, CR, SP and NBSP.
inline bool is_js_space(unsigned char c) { return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0xa0; }

std::string_view js_trim(std::string_view text) {
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && is_js_space(static_cast<unsigned char>(text[begin]))) begin++;
  while (end > begin && is_js_space(static_cast<unsigned char>(text[end - 1]))) end--;
  return text.substr(begin, end - begin);
}

// Whether `name` is one of the comma-separated tokens of a Connection value, as forwardHeaders() and
// responseHeaders() read them: token.trim().toLowerCase() against the lower-cased name. Field names are
// ASCII, and no latin1 character lower-cases into ASCII, so ASCII case folding decides it.
bool named_in(std::string_view name, std::string_view connection) {
  size_t start = 0;
  while (true) {
    const size_t comma = connection.find(',', start);
    const std::string_view token = js_trim(connection.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (!token.empty() && equals_ignoring_case(token, name)) return true;
    if (comma == std::string_view::npos) return false;
    start = comma + 1;
  }
}

// HOP_BY_HOP of gateway/http/protocol.ts.
constexpr std::string_view kHopByHop[] = {
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
};

// AGENT_ONLY of gateway/http/upstream-request.ts.
constexpr std::string_view kAgentOnly[] = {
    "authorization", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded", "expect", "host", "content-length",
};

bool is_hop_by_hop(std::string_view name) {
  for (std::string_view hop : kHopByHop) {
    if (equals_lower(name, hop)) return true;
  }
  return false;
}

// The methods served natively (listener.ts serves others too; those go back to it).
bool is_native_method(std::string_view method) {
  switch (method.size()) {
    case 3:
      return method == "GET" || method == "PUT";
    case 4:
      return method == "HEAD" || method == "POST";
    case 5:
      return method == "PATCH";
    case 6:
      return method == "DELETE";
    case 7:
      return method == "OPTIONS";
    default:
      return false;
  }
}

// The request fields readHeads() acts on, and Proxy-Connection, which llhttp reads as Connection.
enum class RequestField { Other, Host, Authorization, ContentLength, TransferEncoding, Expect, Upgrade, ContentType, Connection, ContentEncoding, ProxyConnection };

RequestField classify_request_field(std::string_view name) {
  switch (name.size()) {
    case 4:
      if (equals_lower(name, "host")) return RequestField::Host;
      break;
    case 6:
      if (equals_lower(name, "expect")) return RequestField::Expect;
      break;
    case 7:
      if (equals_lower(name, "upgrade")) return RequestField::Upgrade;
      break;
    case 10:
      if (equals_lower(name, "connection")) return RequestField::Connection;
      break;
    case 12:
      if (equals_lower(name, "content-type")) return RequestField::ContentType;
      break;
    case 13:
      if (equals_lower(name, "authorization")) return RequestField::Authorization;
      break;
    case 14:
      if (equals_lower(name, "content-length")) return RequestField::ContentLength;
      break;
    case 16:
      if (equals_lower(name, "content-encoding")) return RequestField::ContentEncoding;
      if (equals_lower(name, "proxy-connection")) return RequestField::ProxyConnection;
      break;
    case 17:
      if (equals_lower(name, "transfer-encoding")) return RequestField::TransferEncoding;
      break;
    default:
      break;
  }
  return RequestField::Other;
}

void join(std::string& joined, bool& present, std::string_view value) {
  if (present) joined.append(", ");
  joined.append(value);
  present = true;
}

void reset(RequestHead& out) {
  out.head_bytes = 0;
  out.method = {};
  out.target = {};
  out.version_minor = 1;
  out.fields.clear();
  out.host = {};
  out.hosts = 0;
  out.authorization = {};
  out.has_authorization = false;
  out.content_length = {};
  out.content_lengths = 0;
  out.transfer_encodings = 0;
  out.expects = 0;
  out.upgrades = 0;
  out.content_type = {};
  out.has_content_type = false;
  out.connection.clear();
  out.content_encoding.clear();
  out.has_connection = false;
  out.has_content_encoding = false;
}

}  // namespace

HeadStatus parse_request_head(const char* data, size_t size, size_t max_header_bytes, RequestHead& out) {
  reset(out);
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  // A head we take ends before max_header_bytes, so no byte at or past it is ever needed.
  const size_t limit = size < max_header_bytes ? size : max_header_bytes;
  // Out of bytes at i: more may come, unless the head is already too long.
  const auto short_of = [max_header_bytes](size_t i) { return i >= max_header_bytes ? HeadStatus::HandBack : HeadStatus::Incomplete; };
  auto view = [data](size_t from, size_t to) { return std::string_view(data + from, to - from); };

  // Request line (§3): method SP request-target SP HTTP-version CRLF, single spaces.
  size_t i = 0;
  for (;; i++) {
    if (i >= limit) return short_of(i);
    if (p[i] == ' ') break;
    if (!is(p[i], kTchar) || i >= 7) return HeadStatus::HandBack;  // the longest method served is OPTIONS
  }
  out.method = view(0, i);
  if (!is_native_method(out.method)) return HeadStatus::HandBack;
  const size_t target_start = ++i;
  if (i >= limit) return short_of(i);
  if (p[i] != '/') return HeadStatus::HandBack;  // origin-form only (§3.2.1)
  for (i++;; i++) {
    if (i >= limit) return short_of(i);
    if (p[i] == ' ') break;
    if (p[i] < 0x21 || p[i] > 0x7e) return HeadStatus::HandBack;
  }
  out.target = view(target_start, i);
  static constexpr char kVersion[] = "HTTP/1.1\r\n";
  i++;
  for (size_t k = 0; k < sizeof kVersion - 1; k++, i++) {
    if (i >= limit) return short_of(i);
    if (p[i] != static_cast<unsigned char>(kVersion[k])) return HeadStatus::HandBack;
  }
  out.version_minor = 1;

  // Field lines (§5): name ":" OWS value OWS CRLF, until an empty line.
  for (;;) {
    if (i >= limit) return short_of(i);
    if (p[i] == '\r') {
      if (++i >= limit) return short_of(i);
      if (p[i] != '\n') return HeadStatus::HandBack;
      out.head_bytes = ++i;
      return out.head_bytes < max_header_bytes ? HeadStatus::Ok : HeadStatus::HandBack;
    }
    // Anything but a token here (a leading SP/HTAB of obs-fold, a bare LF, a space before ':') goes back.
    const size_t name_start = i;
    while (is(p[i], kTchar)) {
      if (++i >= limit) return short_of(i);
    }
    if (p[i] != ':' || i == name_start) return HeadStatus::HandBack;
    const std::string_view name = view(name_start, i);
    for (i++;; i++) {
      if (i >= limit) return short_of(i);
      if (!is_ows(p[i])) break;
    }
    const size_t value_start = i;
    size_t value_end = i;
    for (;; i++) {
      if (i >= limit) return short_of(i);
      const unsigned char c = p[i];
      if (c == '\r') break;
      if (!is(c, kFieldByte)) return HeadStatus::HandBack;
      if (!is_ows(c)) value_end = i + 1;
    }
    const size_t cr = i;
    if (++i >= limit) return short_of(i);
    if (p[i] != '\n') return HeadStatus::HandBack;
    i++;
    if (out.fields.size() >= kMaxRequestFields) return HeadStatus::HandBack;
    const std::string_view value = view(value_start, value_end);
    out.fields.push_back({name, value});
    switch (classify_request_field(name)) {
      case RequestField::Other:
        break;
      case RequestField::Host:
        if (out.hosts++ == 0) out.host = value;
        break;
      case RequestField::Authorization:
        if (!out.has_authorization) out.authorization = value;
        out.has_authorization = true;
        break;
      case RequestField::ContentLength:
        // llhttp refuses an HTAB after the digits (a SP it takes): such a request is Node's to refuse.
        if (std::memchr(data + value_end, '\t', cr - value_end) != nullptr) return HeadStatus::HandBack;
        if (out.content_lengths++ == 0) out.content_length = value;
        break;
      case RequestField::TransferEncoding:
        out.transfer_encodings++;
        break;
      case RequestField::Expect:
        out.expects++;
        break;
      case RequestField::Upgrade:
        out.upgrades++;
        break;
      case RequestField::ContentType:
        if (!out.has_content_type) out.content_type = value;
        out.has_content_type = true;
        break;
      case RequestField::Connection:
        join(out.connection, out.has_connection, value);
        break;
      case RequestField::ContentEncoding:
        join(out.content_encoding, out.has_content_encoding, value);
        break;
      case RequestField::ProxyConnection:
        // llhttp takes its close/keep-alive/upgrade like Connection's; readHeads() does not look at it.
        return HeadStatus::HandBack;
    }
  }
}

bool fast_path_request(const RequestHead& head, uint64_t max_body_bytes, uint64_t buffer_body_bytes, uint64_t& content_length_out,
                       bool& has_body_length) {
  content_length_out = 0;
  has_body_length = false;
  if (head.hosts != 1 || head.transfer_encodings != 0 || head.expects != 0 || head.upgrades != 0) return false;
  if (head.has_connection && !equals_lower(head.connection, "keep-alive") && !equals_lower(head.connection, "close")) return false;
  if (head.content_lengths > 1) return false;
  if (head.content_lengths == 1) {
    // checkRequest(): /^\d{1,15}$/, so the value is exact in a double as in a uint64.
    const std::string_view digits = head.content_length;
    if (digits.empty() || digits.size() > 15) return false;
    uint64_t length = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      length = length * 10 + static_cast<uint64_t>(c - '0');
    }
    if (length > max_body_bytes || length > buffer_body_bytes) return false;
    content_length_out = length;
    has_body_length = true;
  }
  return true;
}

bool normalise_target(std::string_view target, std::string& path, std::string_view& query) {
  if (target.empty() || target[0] != '/') return false;
  if (target.size() > 8192) return false;
  for (char ch : target) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '#') return false;
  }
  const size_t query_at = target.find('?');
  const std::string_view raw_path = target.substr(0, query_at);
  query = query_at == std::string_view::npos ? std::string_view() : target.substr(query_at + 1);
  // Most paths are already in their one spelling: no escapes, no empty or dot segments.
  if (raw_path.find('%') == std::string_view::npos && raw_path.find("//") == std::string_view::npos &&
      raw_path.find("/.") == std::string_view::npos) {
    path.assign(raw_path);
    return true;
  }

  std::string decoded;
  decoded.reserve(raw_path.size());
  for (size_t i = 0; i < raw_path.size(); i++) {
    const char ch = raw_path[i];
    if (ch != '%') {
      decoded.push_back(ch);
      continue;
    }
    if (i + 2 >= raw_path.size()) return false;
    const auto hi = static_cast<unsigned char>(raw_path[i + 1]);
    const auto lo = static_cast<unsigned char>(raw_path[i + 2]);
    if (!is(hi, kHex) || !is(lo, kHex)) return false;
    const auto nibble = [](unsigned char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    const int byte = nibble(hi) * 16 + nibble(lo);
    if (byte == 0x2f || byte == 0x5c || byte == 0x00) return false;
    // RFC 3986 §2.3 unreserved characters are decoded; other escapes keep an upper-case spelling.
    const bool unreserved = (byte >= '0' && byte <= '9') || (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') || byte == '-' ||
                            byte == '.' || byte == '_' || byte == '~';
    if (unreserved) {
      decoded.push_back(static_cast<char>(byte));
    } else {
      decoded.push_back('%');
      decoded.push_back(static_cast<char>(hi >= 'a' ? hi - 0x20 : hi));
      decoded.push_back(static_cast<char>(lo >= 'a' ? lo - 0x20 : lo));
    }
    i += 2;
  }

  // Dot segments removed (RFC 3986 §5.2.4), empty segments collapsed; a trailing "/", "." or ".." keeps the path a directory.
  std::vector<std::string_view> out;
  const std::string_view segments(decoded);
  size_t start = 1;
  for (;;) {
    const size_t slash = segments.find('/', start);
    const bool last = slash == std::string_view::npos;
    const std::string_view segment = segments.substr(start, last ? std::string_view::npos : slash - start);
    if (segment == "." || segment == "..") {
      if (segment == "..") {
        if (out.empty()) return false;
        out.pop_back();
      }
      if (last) out.emplace_back();
    } else if (!segment.empty() || last) {
      out.push_back(segment);
    }
    if (last) break;
    start = slash + 1;
  }
  path.assign("/");
  for (size_t k = 0; k < out.size(); k++) {
    if (k > 0) path.push_back('/');
    path.append(out[k]);
  }
  return true;
}

ForwardTarget make_forward_target(std::string_view url_host, std::string_view credential_header_name) {
  ForwardTarget target;
  target.upstream_host_header.assign(url_host);
  for (std::string_view name : kHopByHop) target.dropped.emplace_back(name);
  for (std::string_view name : kAgentOnly) target.dropped.emplace_back(name);
  if (!credential_header_name.empty()) {
    std::string lower(credential_header_name);
    for (char& c : lower) c = static_cast<char>(ascii_lower(static_cast<unsigned char>(c)));
    bool known = false;
    for (const std::string& name : target.dropped) known = known || name == lower;
    if (!known) target.dropped.push_back(std::move(lower));
  }
  return target;
}

void forward_headers(std::vector<std::pair<std::string_view, std::string_view>>& out, const RequestHead& head, const ForwardTarget& target,
                     std::string_view client_ip, bool secure, std::optional<uint64_t> content_length, std::string_view credential_name,
                     std::string_view credential_value, std::string& scratch) {
  out.clear();
  // forwardHeaders() compares the joined Connection value case-sensitively: "Close" names a field "close".
  const bool connection_names_fields = head.has_connection && head.connection != "keep-alive" && head.connection != "close";
  out.emplace_back("host", target.upstream_host_header);
  for (const HeaderField& field : head.fields) {
    bool dropped = false;
    for (const std::string& name : target.dropped) {
      if (equals_lower(field.name, name)) {
        dropped = true;
        break;
      }
    }
    if (dropped || (connection_names_fields && named_in(field.name, head.connection))) continue;
    out.emplace_back(field.name, field.value);
  }
  if (content_length) {
    scratch = std::to_string(*content_length);
    out.emplace_back("content-length", scratch);
  }
  out.emplace_back("x-forwarded-for", client_ip);
  out.emplace_back("x-forwarded-host", head.host);
  out.emplace_back("x-forwarded-proto", secure ? "https" : "http");
  if (!credential_name.empty()) out.emplace_back(credential_name, credential_value);
}

std::optional<uint64_t> forwarded_content_length(std::string_view method, uint64_t body_length) {
  // BODYLESS_METHODS of listener.ts.
  const bool bodyless = method == "GET" || method == "HEAD" || method == "DELETE" || method == "OPTIONS" || method == "TRACE";
  if (body_length > 0 || !bodyless) return body_length;
  return std::nullopt;
}

namespace {

// Parses a Content-Length value: a list of identical decimal numbers (RFC 9110 §8.6 lets a recipient
// take "42, 42" as 42). False when it is anything else, or beyond 64 bits.
bool content_length_value(std::string_view value, uint64_t& length, bool& seen) {
  size_t i = 0;
  for (;;) {
    while (i < value.size() && is_ows(static_cast<unsigned char>(value[i]))) i++;
    const size_t start = i;
    uint64_t n = 0;
    while (i < value.size() && value[i] >= '0' && value[i] <= '9') {
      const auto digit = static_cast<uint64_t>(value[i] - '0');
      if (n > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
      n = n * 10 + digit;
      i++;
    }
    if (i == start) return false;
    if (seen && n != length) return false;
    length = n;
    seen = true;
    while (i < value.size() && is_ows(static_cast<unsigned char>(value[i]))) i++;
    if (i == value.size()) return true;
    if (value[i] != ',') return false;
    i++;
  }
}

}  // namespace

ResponseStatus parse_response_head(const char* data, size_t size, size_t max_header_bytes, std::string_view request_method, ResponseHead& out,
                                   std::string& error) {
  out.head_bytes = 0;
  out.status = 0;
  out.reason = {};
  out.version_minor = 1;
  out.fields.clear();
  out.framing = BodyFraming::None;
  out.content_length = 0;
  out.close = false;
  error.clear();
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  const size_t limit = size < max_header_bytes ? size : max_header_bytes;
  const auto bad = [&error](const char* message) {
    error = message;
    return ResponseStatus::Bad;
  };
  const auto short_of = [&](size_t i) {
    if (i < max_header_bytes) return ResponseStatus::Incomplete;
    error = "the response head is longer than " + std::to_string(max_header_bytes) + " bytes";
    return ResponseStatus::Bad;
  };
  auto view = [data](size_t from, size_t to) { return std::string_view(data + from, to - from); };

  // Status line (§4): HTTP-version SP status-code SP [ reason-phrase ] CRLF; the SP before an empty
  // reason may be missing (llhttp takes that too).
  static constexpr char kVersion[] = "HTTP/1.";
  size_t i = 0;
  for (; i < sizeof kVersion - 1; i++) {
    if (i >= limit) return short_of(i);
    if (p[i] != static_cast<unsigned char>(kVersion[i])) return bad("the status line does not start with HTTP/1.");
  }
  if (i >= limit) return short_of(i);
  if (p[i] != '0' && p[i] != '1') return bad("the response is neither HTTP/1.0 nor HTTP/1.1");
  out.version_minor = p[i++] - '0';
  if (i >= limit) return short_of(i);
  if (p[i++] != ' ') return bad("the status line has no single space after the version");
  for (int k = 0; k < 3; k++, i++) {
    if (i >= limit) return short_of(i);
    if (p[i] < '0' || p[i] > '9' || (k == 0 && p[i] == '0')) return bad("the status code is not three digits from 100");
    out.status = out.status * 10 + (p[i] - '0');
  }
  if (i >= limit) return short_of(i);
  size_t reason_start = i;
  if (p[i] == ' ') {
    reason_start = ++i;
    for (;; i++) {
      if (i >= limit) return short_of(i);
      if (p[i] == '\r') break;
      if (!is(p[i], kFieldByte)) return bad("the reason phrase has a control character");
    }
  } else if (p[i] != '\r') {
    return bad("the status code is not followed by a space or CRLF");
  }
  out.reason = view(reason_start, i);
  if (++i >= limit) return short_of(i);
  if (p[i++] != '\n') return bad("the status line does not end in CRLF");

  for (;;) {
    if (i >= limit) return short_of(i);
    if (p[i] == '\r') {
      if (++i >= limit) return short_of(i);
      if (p[i] != '\n') return bad("the response head does not end in CRLF CRLF");
      out.head_bytes = ++i;
      if (out.head_bytes >= max_header_bytes) return short_of(out.head_bytes);
      break;
    }
    const size_t name_start = i;
    while (is(p[i], kTchar)) {
      if (++i >= limit) return short_of(i);
    }
    if (i == name_start) {
      return bad(is_ows(p[i]) ? "a header line starts with whitespace (obs-fold)" : "a header name is empty or not a token");
    }
    if (p[i] != ':') return bad("a header name is not a token followed by ':'");
    const std::string_view name = view(name_start, i);
    for (i++;; i++) {
      if (i >= limit) return short_of(i);
      if (!is_ows(p[i])) break;
    }
    const size_t value_start = i;
    size_t value_end = i;
    for (;; i++) {
      if (i >= limit) return short_of(i);
      if (p[i] == '\r') break;
      if (!is(p[i], kFieldByte)) return bad("a header value has a control character");
      if (!is_ows(p[i])) value_end = i + 1;
    }
    if (++i >= limit) return short_of(i);
    if (p[i++] != '\n') return bad("a header line does not end in CRLF");
    out.fields.push_back({name, view(value_start, value_end)});
  }

  // Message body length (§6.3).
  bool has_length = false;
  bool transfer_encoding = false;
  bool chunked_only = true;
  int chunked = 0;
  bool keep_alive = false;
  for (const HeaderField& field : out.fields) {
    if (equals_lower(field.name, "content-length")) {
      if (!content_length_value(field.value, out.content_length, has_length)) return bad("Content-Length is not one decimal number");
    } else if (equals_lower(field.name, "transfer-encoding")) {
      transfer_encoding = true;
      size_t start = 0;
      for (;;) {
        const size_t comma = field.value.find(',', start);
        std::string_view coding = field.value.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        while (!coding.empty() && is_ows(static_cast<unsigned char>(coding.front()))) coding.remove_prefix(1);
        while (!coding.empty() && is_ows(static_cast<unsigned char>(coding.back()))) coding.remove_suffix(1);
        if (equals_lower(coding, "chunked")) chunked++;
        else chunked_only = false;
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
    } else if (equals_lower(field.name, "connection")) {
      size_t start = 0;
      for (;;) {
        const size_t comma = field.value.find(',', start);
        std::string_view token = field.value.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        while (!token.empty() && is_ows(static_cast<unsigned char>(token.front()))) token.remove_prefix(1);
        while (!token.empty() && is_ows(static_cast<unsigned char>(token.back()))) token.remove_suffix(1);
        if (equals_lower(token, "close")) out.close = true;
        else if (equals_lower(token, "keep-alive")) keep_alive = true;
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
    }
  }
  if (out.version_minor == 0 && !keep_alive) out.close = true;
  if (transfer_encoding) {
    // §6.1: both would let two readers split the stream differently; an HTTP/1.0 message's framing
    // with Transfer-Encoding is faulty; other codings would reach the agent still coded.
    if (has_length) return bad("the response has both Transfer-Encoding and Content-Length");
    if (out.version_minor == 0) return bad("an HTTP/1.0 response has Transfer-Encoding");
    if (chunked != 1 || !chunked_only) return bad("Transfer-Encoding is not just chunked");
  }
  if (out.status == 101) return bad("the upstream switched protocols unasked (101)");
  if (out.status < 200 || out.status == 204 || out.status == 304 || request_method == "HEAD") {
    out.framing = BodyFraming::None;
  } else if (transfer_encoding) {
    out.framing = BodyFraming::Chunked;
  } else if (has_length) {
    out.framing = BodyFraming::Length;
  } else {
    out.framing = BodyFraming::UntilClose;
  }
  if (out.framing != BodyFraming::Length) out.content_length = 0;
  return ResponseStatus::Ok;
}

void response_headers(std::vector<HeaderField>& out, const ResponseHead& head) {
  out.clear();
  // responseHeaders() reads the first Connection field only, and takes "keep-alive" and "close" as
  // naming no field only when spelled exactly so.
  const HeaderField* connection = nullptr;
  for (const HeaderField& field : head.fields) {
    if (equals_lower(field.name, "connection")) {
      connection = &field;
      break;
    }
  }
  const bool names_fields = connection != nullptr && connection->value != "keep-alive" && connection->value != "close";
  for (const HeaderField& field : head.fields) {
    if (is_hop_by_hop(field.name) || (names_fields && named_in(field.name, connection->value))) continue;
    out.push_back(field);
  }
}

void ChunkedScanner::reset() {
  state_ = State::Size;
  remaining_ = 0;
  digits_ = 0;
  line_bytes_ = 0;
  trailer_bytes_ = 0;
  error_.clear();
}

void ChunkedScanner::fail(const char* message) {
  state_ = State::Bad;
  error_ = message;
}

void ChunkedScanner::step(unsigned char c) {
  if (state_ <= State::SizeLf && ++line_bytes_ > kMaxLineBytes) return fail("a chunk-size line is too long");
  if (state_ >= State::TrailerStart && state_ <= State::FinalLf && ++trailer_bytes_ > kMaxTrailerBytes) return fail("the trailer section is too long");
  switch (state_) {
    case State::Size:
      if (is(c, kHex)) {
        if (remaining_ > (std::numeric_limits<uint64_t>::max() >> 4)) return fail("a chunk size overflows 64 bits");
        remaining_ = remaining_ * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        digits_++;
        return;
      }
      if (digits_ == 0) return fail("a chunk size is not hexadecimal");
      if (c == ';') state_ = State::ExtSemicolonWs;
      else if (is_ows(c)) state_ = State::ExtBws;
      else if (c == '\r') state_ = State::SizeLf;
      else fail("a chunk size is followed by something other than an extension or CRLF");
      return;
    case State::ExtBws:
      // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): whitespace only before a ';'.
      if (c == ';') state_ = State::ExtSemicolonWs;
      else if (!is_ows(c)) fail("whitespace in a chunk-size line is not followed by ';'");
      return;
    case State::ExtSemicolonWs:
      if (is(c, kTchar)) state_ = State::ExtName;
      else if (!is_ows(c)) fail("a chunk extension has no name");
      return;
    case State::ExtName:
      if (c == '=') state_ = State::ExtEqualsWs;
      else if (c == ';') state_ = State::ExtSemicolonWs;
      else if (c == '\r') state_ = State::SizeLf;
      else if (is_ows(c)) state_ = State::ExtNameWs;
      else if (!is(c, kTchar)) fail("a chunk extension name is not a token");
      return;
    case State::ExtNameWs:
      if (c == '=') state_ = State::ExtEqualsWs;
      else if (c == ';') state_ = State::ExtSemicolonWs;
      else if (!is_ows(c)) fail("whitespace after a chunk extension name is not followed by '=' or ';'");
      return;
    case State::ExtEqualsWs:
      if (c == '"') state_ = State::ExtQuoted;
      else if (is(c, kTchar)) state_ = State::ExtToken;
      else if (!is_ows(c)) fail("a chunk extension value is neither a token nor a quoted string");
      return;
    case State::ExtToken:
      if (c == ';') state_ = State::ExtSemicolonWs;
      else if (c == '\r') state_ = State::SizeLf;
      else if (is_ows(c)) state_ = State::ExtBws;
      else if (!is(c, kTchar)) fail("a chunk extension value is not a token");
      return;
    case State::ExtQuoted:
      if (c == '"') state_ = State::ExtAfterQuoted;
      else if (c == '\\') state_ = State::ExtQuotedPair;
      else if (!is(c, kQdtext)) fail("a quoted chunk extension value has a control character");
      return;
    case State::ExtQuotedPair:
      if (is(c, kFieldByte)) state_ = State::ExtQuoted;
      else fail("a quoted chunk extension value escapes a control character");
      return;
    case State::ExtAfterQuoted:
      if (c == ';') state_ = State::ExtSemicolonWs;
      else if (c == '\r') state_ = State::SizeLf;
      else if (is_ows(c)) state_ = State::ExtBws;
      else fail("a quoted chunk extension value is followed by something other than ';' or CRLF");
      return;
    case State::SizeLf:
      if (c != '\n') return fail("a chunk-size line does not end in CRLF");
      line_bytes_ = 0;
      if (remaining_ == 0) state_ = State::TrailerStart;
      else state_ = State::Data;
      return;
    case State::DataCr:
      if (c == '\r') state_ = State::DataLf;
      else fail("chunk data is not followed by CRLF");
      return;
    case State::DataLf:
      if (c != '\n') return fail("chunk data is not followed by CRLF");
      state_ = State::Size;
      digits_ = 0;
      return;
    case State::TrailerStart:
      if (c == '\r') state_ = State::FinalLf;
      else if (is(c, kTchar)) state_ = State::TrailerName;
      else fail(is_ows(c) ? "a trailer line starts with whitespace (obs-fold)" : "a trailer field name is not a token");
      return;
    case State::TrailerName:
      if (c == ':') state_ = State::TrailerValue;
      else if (!is(c, kTchar)) fail("a trailer field name is not a token followed by ':'");
      return;
    case State::TrailerValue:
      if (c == '\r') state_ = State::TrailerLf;
      else if (!is(c, kFieldByte)) fail("a trailer field value has a control character");
      return;
    case State::TrailerLf:
      if (c == '\n') state_ = State::TrailerStart;
      else fail("a trailer field line does not end in CRLF");
      return;
    case State::FinalLf:
      if (c == '\n') state_ = State::Done;
      else fail("the chunked body does not end in CRLF");
      return;
    case State::Data:
    case State::Done:
    case State::Bad:
      return;
  }
}

}  // namespace gapwatch::http
