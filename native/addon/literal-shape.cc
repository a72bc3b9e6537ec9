// Literal shapes of SQL texts: see literal-shape.h.

#include "literal-shape.h"

namespace gapwatch {

size_t Shape::original(size_t shaped_offset) const {
  size_t offset = shaped_offset;
  for (const Cut& cut : cuts) {
    if (cut.shaped_at >= shaped_offset) break;
    offset += cut.length - 1;
  }
  return offset;
}

// A character that may continue an identifier or a number token: a digit run next to one is part of that token.
static bool continues_token(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '$' || c == '.';
}

bool literal_shape(std::string_view text, Shape& shape) {
  shape.key.clear();
  shape.cuts.clear();
  size_t copied_to = 0;
  for (size_t i = 0; i < text.size(); i++) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c > 126 || c == '\'' || c == '"' || c == '$' || c == '\\') return false;
    if (i + 1 < text.size() && ((c == '-' && text[i + 1] == '-') || (c == '/' && text[i + 1] == '*'))) return false;
    if (c < '0' || c > '9') continue;
    size_t end = i + 1;
    while (end < text.size() && text[end] >= '0' && text[end] <= '9') end++;
    const bool bounded = (i == 0 || !continues_token(static_cast<unsigned char>(text[i - 1]))) &&
                         (end == text.size() || !continues_token(static_cast<unsigned char>(text[end])));
    if (bounded && end - i <= 9) {
      shape.key.append(text.substr(copied_to, i - copied_to));
      shape.cuts.push_back({i, shape.key.size(), end - i});
      shape.key.push_back('0');
      copied_to = end;
    }
    i = end - 1;
  }
  if (shape.cuts.empty()) return false;
  shape.key.append(text.substr(copied_to));
  return true;
}

static Napi::Value LiteralShapeForTest(const Napi::CallbackInfo& info) {
  Napi::Buffer<char> text = info[0].As<Napi::Buffer<char>>();
  Shape shape;
  if (!literal_shape(std::string_view(text.Data(), text.Length()), shape)) return info.Env().Null();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("key", Napi::Buffer<char>::Copy(info.Env(), shape.key.data(), shape.key.size()));
  Napi::Array originals = Napi::Array::New(info.Env(), shape.key.size() + 1);
  for (size_t i = 0; i <= shape.key.size(); i++) originals.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(shape.original(i))));
  out.Set("originals", originals);
  return out;
}

void register_literal_shape_test_hook(Napi::Env env, Napi::Object exports) {
  exports.Set("literalShapeForTest", Napi::Function::New<LiteralShapeForTest>(env, "literalShapeForTest"));
}

}  // namespace gapwatch
