#ifndef GAPWATCH_LITERAL_SHAPE_H
#define GAPWATCH_LITERAL_SHAPE_H

#include <napi.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gapwatch {

// literalShape() of gateway/policy/statement-classifier.ts, byte for byte: the text with each integer
// literal of up to 9 digits written as 0, when that certainly keeps the token stream the same apart
// from those values (no quotes, dollar signs, backslashes, comments or non-ASCII bytes). The native
// PostgreSQL data path keeps literal-blind policy decisions by shape, so `pgbench -M simple` and
// every client that writes its values into the text need no round trip to JavaScript per statement.
// A parity test (test/gateway/postgres/literal-shape.test.ts) compares both implementations.
struct Shape {
  std::string key;
  struct Cut {
    size_t at;         // where the literal starts in the text
    size_t shaped_at;  // where its 0 is in the shape
    size_t length;     // its length in the text
  };
  std::vector<Cut> cuts;

  // An offset in the shape, as an offset in the text (literalShape().original).
  size_t original(size_t shaped_offset) const;
};

// False when the text does not qualify or holds no such literal.
bool literal_shape(std::string_view text, Shape& shape);

// Adds literalShapeForTest(text: Buffer) → { key: Buffer, originals: number[] } | null to the exports.
void register_literal_shape_test_hook(Napi::Env env, Napi::Object exports);

}  // namespace gapwatch

#endif
