// JS face of the sensor: `new Sensor(options, onBatch, onDrained?)`, start(), stop(),
// stats(), plus eventLayouts() describing events.h for the decoder test.
#include "sensor-binding.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "../bpf/events.h"
#include "ring-reader.h"
#include "sensor-session.h"

namespace gapwatch {
namespace {

// Batches waiting for the JS thread; beyond this the reader counts queue drops.
constexpr std::size_t kMaxQueuedBatches = 256;

std::uint32_t optional_uint(const Napi::Object& options, const char* key, std::uint32_t fallback) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined() || value.IsNull()) return fallback;
  if (!value.IsNumber() || value.As<Napi::Number>().DoubleValue() < 0) {
    throw Napi::TypeError::New(options.Env(), std::string("options.") + key + " must be a non-negative number");
  }
  return value.As<Napi::Number>().Uint32Value();
}

std::string required_string(const Napi::Object& options, const char* key) {
  Napi::Value value = options.Get(key);
  if (!value.IsString() || value.As<Napi::String>().Utf8Value().empty()) {
    throw Napi::TypeError::New(options.Env(), std::string("options.") + key + " must be a non-empty string");
  }
  return value.As<Napi::String>().Utf8Value();
}

Napi::Error sensor_error(Napi::Env env, const SensorError& error) {
  Napi::Error js = Napi::Error::New(env, error.what());
  js.Set("code", Napi::String::New(env, error.code()));
  return js;
}

void deliver_to_js(Napi::Env env, Napi::Function callback, std::nullptr_t*, std::vector<std::uint8_t>* batch) {
  if (env == nullptr || callback.IsEmpty()) {
    delete batch;
    return;
  }
  // The Buffer owns the vector's bytes; no copy on the JS side.
  Napi::Buffer<std::uint8_t> buffer = Napi::Buffer<std::uint8_t>::New(
      env, batch->data(), batch->size(), [](Napi::Env, std::uint8_t*, std::vector<std::uint8_t>* owned) { delete owned; },
      batch);
  callback.Call({buffer});
}

using BatchQueue = Napi::TypedThreadSafeFunction<std::nullptr_t, std::vector<std::uint8_t>, deliver_to_js>;

class SensorBinding : public Napi::ObjectWrap<SensorBinding> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Sensor",
                       {
                           InstanceMethod<&SensorBinding::Start>("start"),
                           InstanceMethod<&SensorBinding::Stop>("stop"),
                           InstanceMethod<&SensorBinding::Stats>("stats"),
                           InstanceMethod<&SensorBinding::TaskStarts>("taskStarts"),
                       });
  }

  explicit SensorBinding(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SensorBinding>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "new Sensor(options, onBatch): options object and callback required");
    }
    Napi::Object options = info[0].As<Napi::Object>();
    options_.object_path = required_string(options, "objectPath");
    options_.cgroup_path = required_string(options, "cgroupPath");
    options_.argv_max_bytes = optional_uint(options, "argvMaxBytes", options_.argv_max_bytes);
    options_.ring_bytes = optional_uint(options, "ringBytes", options_.ring_bytes);
    // By default wake the reader at a quarter of the ring, so a small ring still never fills between wakeups.
    std::uint32_t default_wakeup = std::min<std::uint32_t>(256u << 10, options_.ring_bytes / 4);
    options_.wakeup_bytes = optional_uint(options, "wakeupBytes", default_wakeup);
    reader_options_.batch_bytes = optional_uint(options, "batchBytes", reader_options_.batch_bytes);
    reader_options_.flush_ms = optional_uint(options, "flushMs", reader_options_.flush_ms);
    if (options_.ring_bytes < 4096 || (options_.ring_bytes & (options_.ring_bytes - 1)) != 0) {
      throw Napi::RangeError::New(env, "options.ringBytes must be a power of two of at least 4096");
    }
    if (reader_options_.flush_ms == 0) throw Napi::RangeError::New(env, "options.flushMs must be at least 1");
    on_batch_ = Napi::Persistent(info[1].As<Napi::Function>());
    if (info.Length() > 2 && info[2].IsFunction()) on_drained_ = Napi::Persistent(info[2].As<Napi::Function>());
  }

  ~SensorBinding() override { shutdown(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (reader_) throw Napi::Error::New(env, "the sensor is already started");
    try {
      session_ = std::make_unique<SensorSession>(options_);
    } catch (const SensorError& error) {
      throw sensor_error(env, error);
    }
    // Runs on the JS thread once stop() released the queue and its last batch was delivered.
    auto* drained = on_drained_.IsEmpty() ? nullptr : new Napi::FunctionReference(Napi::Persistent(on_drained_.Value()));
    queue_ = BatchQueue::New(env, on_batch_.Value(), "gapwatch-sensor-batches", kMaxQueuedBatches, 1,
                             static_cast<std::nullptr_t*>(nullptr),
                             [](Napi::Env finalize_env, Napi::FunctionReference* callback, std::nullptr_t*) {
                               if (callback != nullptr) {
                                 Napi::HandleScope scope(finalize_env);
                                 callback->Call({});
                                 delete callback;
                               }
                             },
                             drained);
    BatchQueue* queue = &queue_;
    try {
      reader_ = std::make_unique<RingReader>(*session_, reader_options_, [queue](std::vector<std::uint8_t>* batch) {
        return queue->NonBlockingCall(batch) == napi_ok;
      });
    } catch (const SensorError& error) {
      queue_.Release();
      session_.reset();
      throw sensor_error(env, error);
    }
    Napi::Object out = Napi::Object::New(env);
    Napi::Array attached = Napi::Array::New(env);
    for (std::size_t i = 0; i < session_->attached().size(); ++i) attached.Set(i, session_->attached()[i]);
    out.Set("programs", attached);
    out.Set("unixConnectHook", session_->unix_connect_hook());
    out.Set("ringBytes", options_.ring_bytes);
    return out;
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value last = reader_ ? stats_object(env) : env.Null();
    shutdown();
    return last;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!reader_) throw Napi::Error::New(env, "the sensor is not started");
    return stats_object(env);
  }

  // Packed gw_task_start records: one Buffer, decoded by collector/sensor.
  Napi::Value TaskStarts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!session_) throw Napi::Error::New(env, "the sensor is not started");
    try {
      std::vector<gw_task_start> starts = session_->task_starts();
      return Napi::Buffer<std::uint8_t>::Copy(env, reinterpret_cast<const std::uint8_t*>(starts.data()),
                                              starts.size() * sizeof(gw_task_start));
    } catch (const SensorError& error) {
      throw sensor_error(env, error);
    }
  }

  Napi::Object stats_object(Napi::Env env) {
    ReaderStats reader = reader_->stats();
    KernelDrops kernel = session_->read_drops();
    Napi::Object out = Napi::Object::New(env);
    Napi::Array kernel_per_type = Napi::Array::New(env);
    Napi::Array kernel_per_cpu = Napi::Array::New(env);
    Napi::Array queue_per_type = Napi::Array::New(env);
    for (std::size_t type = 0; type < GW_EVENT_TYPE_COUNT; ++type) {
      kernel_per_type.Set(type, static_cast<double>(kernel.per_type[type]));
      Napi::Array cpus = Napi::Array::New(env);
      for (std::size_t cpu = 0; cpu < kernel.per_cpu[type].size(); ++cpu) {
        cpus.Set(cpu, static_cast<double>(kernel.per_cpu[type][cpu]));
      }
      kernel_per_cpu.Set(type, cpus);
      queue_per_type.Set(type, static_cast<double>(reader.queue_drops[type]));
    }
    out.Set("kernelDrops", kernel_per_type);
    out.Set("kernelDropsPerCpu", kernel_per_cpu);
    out.Set("queueDrops", queue_per_type);
    out.Set("queueDroppedBatches", static_cast<double>(reader.queue_dropped_batches));
    out.Set("records", static_cast<double>(reader.records));
    out.Set("batches", static_cast<double>(reader.batches));
    out.Set("bytes", static_cast<double>(reader.bytes));
    out.Set("ringBytes", options_.ring_bytes);
    return out;
  }

  // Order matters: the reader's last flush still needs the queue, and the
  // reader reads the session's maps until it is joined.
  void shutdown() {
    if (reader_) {
      reader_->stop();
      reader_.reset();
      queue_.Release();
    }
    session_.reset();
  }

  SensorOptions options_;
  ReaderOptions reader_options_;
  Napi::FunctionReference on_batch_;
  Napi::FunctionReference on_drained_;
  std::unique_ptr<SensorSession> session_;
  BatchQueue queue_;
  std::unique_ptr<RingReader> reader_;
};

Napi::Object field(Napi::Env env, std::size_t offset, std::size_t size) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("offset", static_cast<double>(offset));
  out.Set("size", static_cast<double>(size));
  return out;
}

#define GW_FIELD(object, type, member) \
  object.Set(#member, field(env, offsetof(type, member), sizeof(((type*)nullptr)->member)))

Napi::Value EventLayouts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  auto layout = [&](const char* name, std::size_t size) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("size", static_cast<double>(size));
    Napi::Object fields = Napi::Object::New(env);
    entry.Set("fields", fields);
    out.Set(name, entry);
    return fields;
  };
  Napi::Object header = layout("header", sizeof(gw_header));
  GW_FIELD(header, gw_header, type);
  GW_FIELD(header, gw_header, flags);
  GW_FIELD(header, gw_header, size);
  GW_FIELD(header, gw_header, time_ns);
  Napi::Object task = layout("task", sizeof(gw_task));
  GW_FIELD(task, gw_task, pid);
  GW_FIELD(task, gw_task, tgid);
  GW_FIELD(task, gw_task, ppid);
  GW_FIELD(task, gw_task, uid);
  GW_FIELD(task, gw_task, gid);
  GW_FIELD(task, gw_task, start_ns);
  GW_FIELD(task, gw_task, parent_start_ns);
  GW_FIELD(task, gw_task, cgroup_id);
  GW_FIELD(task, gw_task, comm);
  Napi::Object exec = layout("exec", sizeof(gw_exec));
  GW_FIELD(exec, gw_exec, task);
  GW_FIELD(exec, gw_exec, argv_total);
  GW_FIELD(exec, gw_exec, argv_captured);
  GW_FIELD(exec, gw_exec, filename_len);
  GW_FIELD(exec, gw_exec, old_pid);
  GW_FIELD(exec, gw_exec, filename);
  Napi::Object fork = layout("fork", sizeof(gw_fork));
  GW_FIELD(fork, gw_fork, task);
  Napi::Object exit = layout("exit", sizeof(gw_exit));
  GW_FIELD(exit, gw_exit, task);
  GW_FIELD(exit, gw_exit, exit_status);
  Napi::Object connect = layout("connect", sizeof(gw_connect));
  GW_FIELD(connect, gw_connect, task);
  GW_FIELD(connect, gw_connect, socket_cookie);
  GW_FIELD(connect, gw_connect, fd);
  GW_FIELD(connect, gw_connect, ret);
  GW_FIELD(connect, gw_connect, family);
  GW_FIELD(connect, gw_connect, sock_type);
  GW_FIELD(connect, gw_connect, protocol);
  GW_FIELD(connect, gw_connect, remote_port);
  GW_FIELD(connect, gw_connect, local_port);
  GW_FIELD(connect, gw_connect, path_len);
  GW_FIELD(connect, gw_connect, remote_addr);
  GW_FIELD(connect, gw_connect, local_addr);
  GW_FIELD(connect, gw_connect, unix_path);
  Napi::Object task_start = layout("taskStart", sizeof(gw_task_start));
  GW_FIELD(task_start, gw_task_start, tgid);
  GW_FIELD(task_start, gw_task_start, start_ns);
  Napi::Object loss = layout("loss", sizeof(gw_loss));
  GW_FIELD(loss, gw_loss, kernel_drops);
  GW_FIELD(loss, gw_loss, queue_drops);

  Napi::Object constants = Napi::Object::New(env);
  constants.Set("GW_EVENT_EXEC", static_cast<double>(GW_EVENT_EXEC));
  constants.Set("GW_EVENT_FORK", static_cast<double>(GW_EVENT_FORK));
  constants.Set("GW_EVENT_EXIT", static_cast<double>(GW_EVENT_EXIT));
  constants.Set("GW_EVENT_CONNECT", static_cast<double>(GW_EVENT_CONNECT));
  constants.Set("GW_EVENT_LOSS", static_cast<double>(GW_EVENT_LOSS));
  constants.Set("GW_EVENT_TYPE_COUNT", static_cast<double>(GW_EVENT_TYPE_COUNT));
  constants.Set("GW_EXEC_F_ARGV_TRUNCATED", static_cast<double>(GW_EXEC_F_ARGV_TRUNCATED));
  constants.Set("GW_EXEC_F_ARGV_READ_FAILED", static_cast<double>(GW_EXEC_F_ARGV_READ_FAILED));
  constants.Set("GW_EXEC_F_FILENAME_TRUNCATED", static_cast<double>(GW_EXEC_F_FILENAME_TRUNCATED));
  constants.Set("GW_CONNECT_F_INTENT", static_cast<double>(GW_CONNECT_F_INTENT));
  constants.Set("GW_CONNECT_F_OUTCOME", static_cast<double>(GW_CONNECT_F_OUTCOME));
  constants.Set("GW_CONNECT_F_LOCAL", static_cast<double>(GW_CONNECT_F_LOCAL));
  constants.Set("GW_CONNECT_F_PATH_TRUNCATED", static_cast<double>(GW_CONNECT_F_PATH_TRUNCATED));
  constants.Set("GW_ARGV_AREA", static_cast<double>(GW_ARGV_AREA));
  out.Set("constants", constants);
  return out;
}

}  // namespace

void register_sensor(Napi::Env env, Napi::Object exports) {
  exports.Set("Sensor", SensorBinding::Define(env));
  exports.Set("eventLayouts", Napi::Function::New(env, EventLayouts, "eventLayouts"));
}

}  // namespace gapwatch
