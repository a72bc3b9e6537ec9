#ifndef GAPWATCH_SENSOR_SESSION_H
#define GAPWATCH_SENSOR_SESSION_H

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../bpf/events.h"

struct bpf_object;
struct bpf_link;
struct bpf_map;

namespace gapwatch {

// A failure to bring the sensor up. code is the stable error code the
// TypeScript side maps to its catalogue (collector/errors.ts).
class SensorError : public std::runtime_error {
 public:
  SensorError(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

struct SensorOptions {
  std::string object_path;
  // cgroup v2 root the connect hooks attach to (they see what runs below it).
  std::string cgroup_path;
  std::uint32_t argv_max_bytes = 4096;
  // Ring buffer size: a power of two, at least a page.
  std::uint32_t ring_bytes = 8u << 20;
  // Kernel wakes the reader once this much is queued; below it the reader drains on its timer.
  std::uint64_t wakeup_bytes = 256u << 10;
};

// Sum over CPUs of the kernel's failed reservations, per enum gw_event_type,
// plus the per-CPU detail.
struct KernelDrops {
  std::vector<std::uint64_t> per_type;               // [GW_EVENT_TYPE_COUNT]
  std::vector<std::vector<std::uint64_t>> per_cpu;   // [GW_EVENT_TYPE_COUNT][cpus]
};

// The loaded and attached programs. Destruction detaches every link and
// closes the object, which releases all maps.
class SensorSession {
 public:
  explicit SensorSession(const SensorOptions& options);
  ~SensorSession();
  SensorSession(const SensorSession&) = delete;
  SensorSession& operator=(const SensorSession&) = delete;

  int ring_fd() const;
  // Runs the task iterator: (tgid, start_boottime) of every process alive now.
  std::vector<gw_task_start> task_starts() const;
  KernelDrops read_drops() const;
  bool unix_connect_hook() const { return unix_connect_hook_; }
  const std::vector<std::string>& attached() const { return attached_; }

 private:
  void open();
  void configure();
  void load();
  void attach();
  void release();
  [[noreturn]] void fail(const std::string& code, const std::string& what, int error_number,
                         const std::string& hint = "");

  SensorOptions options_;
  bpf_object* object_ = nullptr;
  bpf_map* events_ = nullptr;
  bpf_map* drops_ = nullptr;
  std::vector<bpf_link*> links_;
  bpf_link* task_iter_ = nullptr;
  std::vector<std::string> attached_;
  bool unix_connect_hook_ = false;
  int cpus_ = 0;
};

}  // namespace gapwatch

#endif
