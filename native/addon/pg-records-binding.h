#ifndef GAPWATCH_PG_RECORDS_BINDING_H
#define GAPWATCH_PG_RECORDS_BINDING_H

#include <napi.h>

namespace gapwatch {

// Adds encodePgRecordForTest() (pg-records-binding.cc) to the addon's exports.
void register_pg_records_test_hook(Napi::Env env, Napi::Object exports);

}  // namespace gapwatch

#endif
