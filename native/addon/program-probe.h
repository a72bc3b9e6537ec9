#ifndef GAPWATCH_PROGRAM_PROBE_H
#define GAPWATCH_PROGRAM_PROBE_H

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace gapwatch {

// How far a probe got. A failure is reported at the stage that failed;
// kDone means the program loaded, attached and fired for this process.
enum class ProbeStage { kOpen, kLoad, kAttach, kTrigger, kDone };

const char* probe_stage_name(ProbeStage stage);

struct ProbeOptions {
  // cgroup v2 directory that cgroup programs attach to.
  std::optional<std::string> cgroup_path;
};

struct ProbeResult {
  std::string program;
  std::string section;
  ProbeStage stage = ProbeStage::kOpen;
  bool loaded = false;
  bool attached = false;
  bool fired = false;
  std::uint64_t hits = 0;
  // Positive errno of the failing call; 0 on success, and also when the
  // program attached but simply did not fire (no syscall failed then).
  int error_number = 0;
  // Failure description followed by the last relevant libbpf log lines.
  std::optional<std::string> error;
};

// A mistake by the caller that only shows once the object is open, e.g. a
// cgroup program without a cgroup path. Environment failures never throw.
class ProbeUsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Opens object_path, loads and attaches only program_name, triggers it from
// the calling process (UDP connect() to 127.0.0.1:9, or fork() for
// sched_process_fork programs) and reads hits[getpid()] from the "hits" map.
// Every kernel object created is released before returning.
ProbeResult probe_program(const std::string& object_path, const std::string& program_name,
                          const ProbeOptions& options);

}  // namespace gapwatch

#endif
