#include "record-input.h"

#include <charconv>
#include <cmath>
#include <type_traits>

namespace gapwatch {

Napi::Object RecordInput::object(const Napi::Value& value, const std::string& what) {
  if (!value.IsObject()) throw Napi::TypeError::New(env_, what + " must be an object");
  return value.As<Napi::Object>();
}

Napi::Array RecordInput::array(const Napi::Value& value, const std::string& what) {
  if (!present(value)) return Napi::Array::New(env_);
  if (!value.IsArray()) throw Napi::TypeError::New(env_, what + " must be an array");
  return value.As<Napi::Array>();
}

std::string_view RecordInput::bytes(const Napi::Value& value, const std::string& what) {
  if (!present(value)) return {};
  if (value.IsString()) return strings_.emplace_back(value.As<Napi::String>().Utf8Value());
  if (value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    Napi::Uint8Array array = value.As<Napi::Uint8Array>();
    return {reinterpret_cast<const char*>(array.Data()), array.ByteLength()};
  }
  throw Napi::TypeError::New(env_, what + " must be a string or a Buffer");
}

template <typename T>
T RecordInput::integer(const Napi::Value& value, const std::string& what) {
  static_assert(std::is_same_v<T, int64_t> || std::is_same_v<T, uint64_t>);
  T out = 0;
  bool ok = true;
  if (!present(value)) return 0;
  if (value.IsBigInt()) {
    if constexpr (std::is_signed_v<T>) out = value.As<Napi::BigInt>().Int64Value(&ok);
    else out = value.As<Napi::BigInt>().Uint64Value(&ok);
  } else if (value.IsNumber()) {
    const double n = value.As<Napi::Number>().DoubleValue();
    ok = std::fabs(n) <= 9007199254740991.0 && std::trunc(n) == n && (std::is_signed_v<T> || n >= 0);
    if (ok) out = static_cast<T>(n);
  } else if (value.IsString()) {
    const std::string text = value.As<Napi::String>().Utf8Value();
    const char* end = text.data() + text.size();
    const std::from_chars_result parsed = std::from_chars(text.data(), end, out);
    ok = !text.empty() && parsed.ec == std::errc() && parsed.ptr == end;
  } else {
    ok = false;
  }
  const char* range = std::is_signed_v<T> ? " must be an int64" : " must be a uint64";
  if (!ok) throw Napi::RangeError::New(env_, what + range);
  return out;
}

template int64_t RecordInput::integer<int64_t>(const Napi::Value&, const std::string&);
template uint64_t RecordInput::integer<uint64_t>(const Napi::Value&, const std::string&);

uint32_t RecordInput::uint32(const Napi::Value& value, const std::string& what) {
  const uint64_t n = integer<uint64_t>(value, what);
  if (n > UINT32_MAX) throw Napi::RangeError::New(env_, what + " must fit in 32 unsigned bits");
  return static_cast<uint32_t>(n);
}

std::vector<std::string_view> RecordInput::strings(const Napi::Value& value, const std::string& what) {
  std::vector<std::string_view> out;
  Napi::Array items = array(value, what);
  for (uint32_t i = 0; i < items.Length(); i++) out.push_back(bytes(items.Get(i), what + "[]"));
  return out;
}

}  // namespace gapwatch
