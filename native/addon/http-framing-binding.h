#ifndef GAPWATCH_HTTP_FRAMING_BINDING_H
#define GAPWATCH_HTTP_FRAMING_BINDING_H

#include <napi.h>

namespace gapwatch {

// Adds httpFramingForTest() (http-framing-binding.cc) to the addon's exports.
void register_http_framing_test_hook(Napi::Env env, Napi::Object exports);

}  // namespace gapwatch

#endif
