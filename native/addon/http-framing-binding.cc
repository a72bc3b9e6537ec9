#include "http-framing-binding.h"

#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http-framing.h"

namespace {

// Parity-test hook, not part of the gateway's contract: the one way JavaScript reaches http-framing.cc,
// so test/gateway/http/http-framing.test.ts can compare it with listener.ts, request-target.ts and
// upstream-request.ts. Bytes go in as Buffers; strings come out decoded as latin1, as Node decodes
// header fields.
//
// httpFramingForTest(op, ...args):
//   'parseRequestHead', bytes, maxHeaderBytes → { status: 'ok' | 'incomplete' | 'handBack', headBytes, method, target,
//       versionMinor, fields: [name, value, …], host?, hosts, authorization?, contentLength?, contentLengths,
//       transferEncodings, expects, upgrades, contentType?, connection?, contentEncoding? }
//   'fastPathRequest', bytes, maxHeaderBytes, maxBodyBytes, bufferBodyBytes → { status, fast, contentLength: number | null }
//   'normaliseTarget', bytes → { path, query } | null
//   'forwardHeaders', bytes, maxHeaderBytes, { urlHost, credentialHeader, credentialValue, clientIp, secure, contentLength }
//       → [name, value, …] | null (null: the head is not Ok)
//   'forwardedContentLength', method, bodyLength → number | null
//   'parseResponseHead', bytes, maxHeaderBytes, requestMethod → { status: 'ok' | 'incomplete' | 'bad', error, headBytes,
//       statusCode, reason, versionMinor, fields, framing: 'none' | 'length' | 'chunked' | 'untilClose', contentLength: bigint, close }
//   'responseHeaders', bytes, maxHeaderBytes, requestMethod → [name, value, …] | null
//   'scanChunked', pieces: Buffer[] → { consumed, done, bad, error, data: Buffer } (pieces fed in turn while consumed)

std::string_view bytes_arg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer");
  }
  Napi::Uint8Array array = info[index].As<Napi::Uint8Array>();
  return {reinterpret_cast<const char*>(array.Data()), array.ByteLength()};
}

uint64_t count_arg(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, std::string(what) + " must be a number");
  const double n = value.As<Napi::Number>().DoubleValue();
  if (!(n >= 0) || n > 9007199254740991.0 || std::trunc(n) != n) throw Napi::RangeError::New(env, std::string(what) + " must be a safe integer ≥ 0");
  return static_cast<uint64_t>(n);
}

uint64_t count_arg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  return count_arg(info.Env(), info.Length() > index ? info[index] : info.Env().Undefined(), what);
}

std::string string_arg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[index].As<Napi::String>().Utf8Value();
}

Napi::String latin1(Napi::Env env, std::string_view text) {
  napi_value out;
  NAPI_THROW_IF_FAILED(env, napi_create_string_latin1(env, text.data(), text.size(), &out), Napi::String());
  return Napi::String(env, out);
}

Napi::Value optional_latin1(Napi::Env env, bool present, std::string_view text) {
  return present ? static_cast<Napi::Value>(latin1(env, text)) : env.Undefined();
}

Napi::Array flat_fields(Napi::Env env, const std::vector<gapwatch::http::HeaderField>& fields) {
  Napi::Array out = Napi::Array::New(env, fields.size() * 2);
  for (size_t i = 0; i < fields.size(); i++) {
    out.Set(static_cast<uint32_t>(2 * i), latin1(env, fields[i].name));
    out.Set(static_cast<uint32_t>(2 * i + 1), latin1(env, fields[i].value));
  }
  return out;
}

const char* head_status_name(gapwatch::http::HeadStatus status) {
  switch (status) {
    case gapwatch::http::HeadStatus::Ok:
      return "ok";
    case gapwatch::http::HeadStatus::Incomplete:
      return "incomplete";
    case gapwatch::http::HeadStatus::HandBack:
      return "handBack";
  }
  return "?";
}

Napi::Value parse_request_head(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string_view bytes = bytes_arg(info, 1, "bytes");
  gapwatch::http::RequestHead head;
  const gapwatch::http::HeadStatus status = gapwatch::http::parse_request_head(bytes.data(), bytes.size(), count_arg(info, 2, "maxHeaderBytes"), head);
  Napi::Object out = Napi::Object::New(env);
  out.Set("status", head_status_name(status));
  if (status != gapwatch::http::HeadStatus::Ok) return out;
  out.Set("headBytes", Napi::Number::New(env, static_cast<double>(head.head_bytes)));
  out.Set("method", latin1(env, head.method));
  out.Set("target", latin1(env, head.target));
  out.Set("versionMinor", Napi::Number::New(env, head.version_minor));
  out.Set("fields", flat_fields(env, head.fields));
  out.Set("host", optional_latin1(env, head.hosts > 0, head.host));
  out.Set("hosts", Napi::Number::New(env, head.hosts));
  out.Set("authorization", optional_latin1(env, head.has_authorization, head.authorization));
  out.Set("contentLength", optional_latin1(env, head.content_lengths > 0, head.content_length));
  out.Set("contentLengths", Napi::Number::New(env, head.content_lengths));
  out.Set("transferEncodings", Napi::Number::New(env, head.transfer_encodings));
  out.Set("expects", Napi::Number::New(env, head.expects));
  out.Set("upgrades", Napi::Number::New(env, head.upgrades));
  out.Set("contentType", optional_latin1(env, head.has_content_type, head.content_type));
  out.Set("connection", optional_latin1(env, head.has_connection, head.connection));
  out.Set("contentEncoding", optional_latin1(env, head.has_content_encoding, head.content_encoding));
  return out;
}

Napi::Value fast_path_request(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string_view bytes = bytes_arg(info, 1, "bytes");
  gapwatch::http::RequestHead head;
  const gapwatch::http::HeadStatus status = gapwatch::http::parse_request_head(bytes.data(), bytes.size(), count_arg(info, 2, "maxHeaderBytes"), head);
  Napi::Object out = Napi::Object::New(env);
  out.Set("status", head_status_name(status));
  uint64_t length = 0;
  bool has_length = false;
  const bool fast = status == gapwatch::http::HeadStatus::Ok &&
                    gapwatch::http::fast_path_request(head, count_arg(info, 3, "maxBodyBytes"), count_arg(info, 4, "bufferBodyBytes"), length, has_length);
  out.Set("fast", Napi::Boolean::New(env, fast));
  out.Set("contentLength", fast && has_length ? static_cast<Napi::Value>(Napi::Number::New(env, static_cast<double>(length))) : env.Null());
  return out;
}

Napi::Value normalise_target(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  std::string_view query;
  if (!gapwatch::http::normalise_target(bytes_arg(info, 1, "target"), path, query)) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("path", latin1(env, path));
  out.Set("query", latin1(env, query));
  return out;
}

Napi::Value forward_headers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string_view bytes = bytes_arg(info, 1, "bytes");
  gapwatch::http::RequestHead head;
  if (gapwatch::http::parse_request_head(bytes.data(), bytes.size(), count_arg(info, 2, "maxHeaderBytes"), head) != gapwatch::http::HeadStatus::Ok) {
    return env.Null();
  }
  if (info.Length() < 4 || !info[3].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
  Napi::Object options = info[3].As<Napi::Object>();
  const auto text = [&](const char* key) {
    const Napi::Value value = options.Get(key);
    if (!value.IsString()) throw Napi::TypeError::New(env, std::string("options.") + key + " must be a string");
    return value.As<Napi::String>().Utf8Value();
  };
  const std::string url_host = text("urlHost");
  const std::string credential_header = text("credentialHeader");
  const std::string credential_value = text("credentialValue");
  const std::string client_ip = text("clientIp");
  const bool secure = options.Get("secure").ToBoolean();
  const Napi::Value length = options.Get("contentLength");
  std::optional<uint64_t> content_length;
  if (!length.IsNull() && !length.IsUndefined()) content_length = count_arg(env, length, "options.contentLength");

  const gapwatch::http::ForwardTarget target = gapwatch::http::make_forward_target(url_host, credential_header);
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string scratch;
  gapwatch::http::forward_headers(headers, head, target, client_ip, secure, content_length, credential_header, credential_value, scratch);
  Napi::Array out = Napi::Array::New(env, headers.size() * 2);
  for (size_t i = 0; i < headers.size(); i++) {
    out.Set(static_cast<uint32_t>(2 * i), latin1(env, headers[i].first));
    out.Set(static_cast<uint32_t>(2 * i + 1), latin1(env, headers[i].second));
  }
  return out;
}

Napi::Value forwarded_content_length(const Napi::CallbackInfo& info) {
  const std::optional<uint64_t> length = gapwatch::http::forwarded_content_length(string_arg(info, 1, "method"), count_arg(info, 2, "bodyLength"));
  return length ? static_cast<Napi::Value>(Napi::Number::New(info.Env(), static_cast<double>(*length))) : info.Env().Null();
}

const char* framing_name(gapwatch::http::BodyFraming framing) {
  switch (framing) {
    case gapwatch::http::BodyFraming::None:
      return "none";
    case gapwatch::http::BodyFraming::Length:
      return "length";
    case gapwatch::http::BodyFraming::Chunked:
      return "chunked";
    case gapwatch::http::BodyFraming::UntilClose:
      return "untilClose";
  }
  return "?";
}

Napi::Value parse_response_head(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string_view bytes = bytes_arg(info, 1, "bytes");
  const std::string method = string_arg(info, 3, "requestMethod");
  gapwatch::http::ResponseHead head;
  std::string error;
  const gapwatch::http::ResponseStatus status =
      gapwatch::http::parse_response_head(bytes.data(), bytes.size(), count_arg(info, 2, "maxHeaderBytes"), method, head, error);
  Napi::Object out = Napi::Object::New(env);
  out.Set("status", status == gapwatch::http::ResponseStatus::Ok ? "ok" : status == gapwatch::http::ResponseStatus::Incomplete ? "incomplete" : "bad");
  out.Set("error", error);
  if (status != gapwatch::http::ResponseStatus::Ok) return out;
  out.Set("headBytes", Napi::Number::New(env, static_cast<double>(head.head_bytes)));
  out.Set("statusCode", Napi::Number::New(env, head.status));
  out.Set("reason", latin1(env, head.reason));
  out.Set("versionMinor", Napi::Number::New(env, head.version_minor));
  out.Set("fields", flat_fields(env, head.fields));
  out.Set("framing", framing_name(head.framing));
  out.Set("contentLength", Napi::BigInt::New(env, head.content_length));
  out.Set("close", Napi::Boolean::New(env, head.close));
  return out;
}

Napi::Value response_headers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string_view bytes = bytes_arg(info, 1, "bytes");
  const std::string method = string_arg(info, 3, "requestMethod");
  gapwatch::http::ResponseHead head;
  std::string error;
  if (gapwatch::http::parse_response_head(bytes.data(), bytes.size(), count_arg(info, 2, "maxHeaderBytes"), method, head, error) !=
      gapwatch::http::ResponseStatus::Ok) {
    return env.Null();
  }
  std::vector<gapwatch::http::HeaderField> fields;
  gapwatch::http::response_headers(fields, head);
  return flat_fields(env, fields);
}

Napi::Value scan_chunked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(env, "pieces must be an array of Buffers");
  Napi::Array pieces = info[1].As<Napi::Array>();
  gapwatch::http::ChunkedScanner scanner;
  std::string data;
  size_t consumed = 0;
  for (uint32_t k = 0; k < pieces.Length(); k++) {
    const Napi::Value piece = pieces.Get(k);
    if (!piece.IsTypedArray() || piece.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw Napi::TypeError::New(env, "pieces must be an array of Buffers");
    }
    Napi::Uint8Array array = piece.As<Napi::Uint8Array>();
    const size_t n = array.ByteLength();
    const size_t used = scanner.feed(reinterpret_cast<const char*>(array.Data()), n, [&data](const char* p, size_t length) { data.append(p, length); });
    consumed += used;
    if (used < n) break;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("consumed", Napi::Number::New(env, static_cast<double>(consumed)));
  out.Set("done", Napi::Boolean::New(env, scanner.done()));
  out.Set("bad", Napi::Boolean::New(env, scanner.bad()));
  out.Set("error", scanner.error());
  out.Set("data", Napi::Buffer<char>::Copy(env, data.data(), data.size()));
  return out;
}

Napi::Value HttpFramingForTest(const Napi::CallbackInfo& info) {
  const std::string op = string_arg(info, 0, "op");
  if (op == "parseRequestHead") return parse_request_head(info);
  if (op == "fastPathRequest") return fast_path_request(info);
  if (op == "normaliseTarget") return normalise_target(info);
  if (op == "forwardHeaders") return forward_headers(info);
  if (op == "forwardedContentLength") return forwarded_content_length(info);
  if (op == "parseResponseHead") return parse_response_head(info);
  if (op == "responseHeaders") return response_headers(info);
  if (op == "scanChunked") return scan_chunked(info);
  throw Napi::TypeError::New(info.Env(), "unknown op " + op);
}

}  // namespace

namespace gapwatch {

void register_http_framing_test_hook(Napi::Env env, Napi::Object exports) {
  exports.Set("httpFramingForTest", Napi::Function::New<HttpFramingForTest>(env, "httpFramingForTest"));
}

}  // namespace gapwatch
