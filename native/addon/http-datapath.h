#ifndef GAPWATCH_HTTP_DATAPATH_H
#define GAPWATCH_HTTP_DATAPATH_H

#include <napi.h>

namespace gapwatch {

// Adds `HttpDataPath` (class) to the addon's exports: the HTTP gateway's native data path
// (http-datapath.cc).
void register_http_datapath(Napi::Env env, Napi::Object exports);

}  // namespace gapwatch

#endif
