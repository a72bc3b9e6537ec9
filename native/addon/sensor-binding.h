#ifndef GAPWATCH_SENSOR_BINDING_H
#define GAPWATCH_SENSOR_BINDING_H

#include <napi.h>

namespace gapwatch {

// Adds `Sensor` (class) and `eventLayouts()` to the addon's exports.
void register_sensor(Napi::Env env, Napi::Object exports);

}  // namespace gapwatch

#endif
