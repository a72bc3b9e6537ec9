// JS bindings of gapwatch_native. Argument mistakes throw; kernel and
// environment failures come back as data so `gapwatch doctor` can report them.
// Built with NODE_ADDON_API_CPP_EXCEPTIONS_ALL, so any std::exception that
// escapes (e.g. std::system_error from uname) becomes a JS Error.
#include <napi.h>

#include <string>

#include "kernel-info.h"
#include "libbpf-log.h"
#include "prog-type-support.h"
#include "program-probe.h"
#include "sensor-binding.h"

namespace {

std::string required_string(const Napi::CallbackInfo& info, std::size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  }
  std::string value = info[index].As<Napi::String>().Utf8Value();
  if (value.empty()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must not be empty");
  }
  return value;
}

gapwatch::ProbeOptions probe_options(const Napi::CallbackInfo& info, std::size_t index) {
  gapwatch::ProbeOptions options;
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) {
    return options;
  }
  if (!info[index].IsObject()) {
    throw Napi::TypeError::New(info.Env(), "options must be an object");
  }
  Napi::Value cgroup_path = info[index].As<Napi::Object>().Get("cgroupPath");
  if (cgroup_path.IsUndefined() || cgroup_path.IsNull()) {
    return options;
  }
  if (!cgroup_path.IsString()) {
    throw Napi::TypeError::New(info.Env(), "options.cgroupPath must be a string");
  }
  options.cgroup_path = cgroup_path.As<Napi::String>().Utf8Value();
  return options;
}

Napi::Value KernelInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  gapwatch::KernelInfo kernel = gapwatch::read_kernel_info();
  Napi::Object out = Napi::Object::New(env);
  out.Set("release", kernel.release);
  out.Set("machine", kernel.machine);
  out.Set("btfVmlinux", kernel.btf_vmlinux);
  out.Set("libbpfVersion", kernel.libbpf_version);
  return out;
}

Napi::Value ProgTypeSupported(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = required_string(info, 0, "type");
  auto type = gapwatch::prog_type_from_name(name);
  if (!type) {
    throw Napi::TypeError::New(env, "unknown program type '" + name +
                                        "' (expected one of: " +
                                        gapwatch::known_prog_type_names() + ")");
  }
  return Napi::Boolean::New(env, gapwatch::prog_type_supported(*type));
}

Napi::Value ProbeProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string object_path = required_string(info, 0, "objectPath");
  std::string program_name = required_string(info, 1, "programName");
  gapwatch::ProbeOptions options = probe_options(info, 2);

  gapwatch::ProbeResult result;
  try {
    result = gapwatch::probe_program(object_path, program_name, options);
  } catch (const gapwatch::ProbeUsageError& error) {
    throw Napi::TypeError::New(env, error.what());
  }

  Napi::Object out = Napi::Object::New(env);
  out.Set("program", result.program);
  out.Set("section", result.section);
  out.Set("stage", gapwatch::probe_stage_name(result.stage));
  out.Set("loaded", result.loaded);
  out.Set("attached", result.attached);
  out.Set("fired", result.fired);
  out.Set("hits", Napi::Number::New(env, static_cast<double>(result.hits)));
  out.Set("errno", result.error_number);
  out.Set("error", result.error ? Napi::Value(Napi::String::New(env, *result.error))
                                : env.Null());
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  gapwatch::install_libbpf_log();
  exports.Set("kernelInfo", Napi::Function::New(env, KernelInfo, "kernelInfo"));
  exports.Set("progTypeSupported", Napi::Function::New(env, ProgTypeSupported, "progTypeSupported"));
  exports.Set("probeProgram", Napi::Function::New(env, ProbeProgram, "probeProgram"));
  gapwatch::register_sensor(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(gapwatch_native, Init)
