#ifndef GAPWATCH_HTTP_RECORDS_BINDING_H
#define GAPWATCH_HTTP_RECORDS_BINDING_H

#include <napi.h>

namespace gapwatch {

// Adds encodeHttpRecordForTest() (http-records-binding.cc) to the addon's exports.
void register_http_records_test_hook(Napi::Env env, Napi::Object exports);

}  // namespace gapwatch

#endif
