#ifndef GAPWATCH_RECORD_INPUT_H
#define GAPWATCH_RECORD_INPUT_H

#include <napi.h>

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace gapwatch {

// Reads the JavaScript arguments of the record encoders' parity-test hooks (pg-records-binding.cc,
// http-records-binding.cc) into the views the encoders take: a string field may be a Buffer of raw
// wire bytes (viewed: the call's arguments outlive the encoding) or a string (its UTF-8 bytes);
// integers are numbers, bigints or decimal strings; absent (undefined, null) fields are defaults.
// Errors are thrown as JavaScript TypeError / RangeError naming the field (`what`).
class RecordInput {
 public:
  explicit RecordInput(Napi::Env env) : env_(env) {}

  Napi::Env env() const { return env_; }

  static bool present(const Napi::Value& value) { return !value.IsUndefined() && !value.IsNull(); }
  static bool is_true(const Napi::Value& value) { return value.IsBoolean() && value.As<Napi::Boolean>().Value(); }

  Napi::Object object(const Napi::Value& value, const std::string& what);

  // An absent value is an empty array.
  Napi::Array array(const Napi::Value& value, const std::string& what);

  std::string_view bytes(const Napi::Value& value, const std::string& what);

  int64_t int64(const Napi::Value& value, const std::string& what) { return integer<int64_t>(value, what); }
  uint64_t uint64(const Napi::Value& value, const std::string& what) { return integer<uint64_t>(value, what); }
  uint32_t uint32(const Napi::Value& value, const std::string& what);

  std::vector<std::string_view> strings(const Napi::Value& value, const std::string& what);

 private:
  template <typename T>
  T integer(const Napi::Value& value, const std::string& what);

  Napi::Env env_;
  std::deque<std::string> strings_;  // UTF-8 copies of JavaScript strings; a deque keeps them in place
};

}  // namespace gapwatch

#endif  // GAPWATCH_RECORD_INPUT_H
