#include "program-probe.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "libbpf-log.h"

namespace gapwatch {
namespace {

constexpr const char* kHitsMapName = "hits";
// Room for the failure line plus the tail of libbpf's log (~1 KiB total).
constexpr std::size_t kMaxErrorBytes = 1024;
// UDP "discard": connect() on a datagram socket sends nothing, but still runs
// the connect syscall path and the cgroup/connect4 hook.
constexpr std::uint16_t kTriggerPort = 9;
// libbpf reports some failures with its own codes from here upwards.
constexpr int kLibbpfErrnoBase = 4000;

struct ObjectCloser {
  void operator()(bpf_object* object) const { bpf_object__close(object); }
};
struct LinkDestroyer {
  void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};
using ObjectPtr = std::unique_ptr<bpf_object, ObjectCloser>;
using LinkPtr = std::unique_ptr<bpf_link, LinkDestroyer>;

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

enum class Trigger { kConnect, kFork };

// sched_process_fork fires in the forking parent; everything else gapwatch
// probes sits on the connect() path.
Trigger trigger_for_section(const std::string& section) {
  static const std::string kForkEvent = "sched_process_fork";
  if (section.size() >= kForkEvent.size() &&
      section.compare(section.size() - kForkEvent.size(), kForkEvent.size(), kForkEvent) == 0) {
    return Trigger::kFork;
  }
  return Trigger::kConnect;
}

// Program types whose attach target is a cgroup rather than a kernel hook.
bool attaches_to_cgroup(bpf_prog_type type) {
  switch (type) {
    case BPF_PROG_TYPE_CGROUP_SKB:
    case BPF_PROG_TYPE_CGROUP_SOCK:
    case BPF_PROG_TYPE_CGROUP_SOCK_ADDR:
    case BPF_PROG_TYPE_CGROUP_SOCKOPT:
    case BPF_PROG_TYPE_CGROUP_SYSCTL:
    case BPF_PROG_TYPE_CGROUP_DEVICE:
    case BPF_PROG_TYPE_SOCK_OPS:
      return true;
    default:
      return false;
  }
}

bool starts_with(const std::string& text, const char* prefix) {
  return text.rfind(prefix, 0) == 0;
}

bool is_directory(const char* path) {
  struct stat info {};
  return stat(path, &info) == 0 && S_ISDIR(info.st_mode);
}

// Classic tracepoints are attached through the event id that only tracefs
// exposes; a host without tracefs mounted fails with a bare ENOENT.
std::string tracefs_hint(const std::string& section, int error_number) {
  if (error_number != ENOENT ||
      !(starts_with(section, "tracepoint/") || starts_with(section, "tp/"))) {
    return "";
  }
  if (is_directory("/sys/kernel/tracing/events") ||
      is_directory("/sys/kernel/debug/tracing/events")) {
    return "";
  }
  return " (tracefs is not mounted; classic tracepoints need it: "
         "mount -t tracefs nodev /sys/kernel/tracing)";
}

// libbpf's own EPERM advice is about RLIMIT_MEMLOCK, which kernels since 5.11
// no longer use for BPF memory; say what EPERM usually means instead.
std::string load_permission_hint(int error_number) {
  if (error_number != EPERM) {
    return "";
  }
  if (geteuid() != 0) {
    return " (not running as root: BPF needs CAP_BPF plus CAP_PERFMON for tracing or "
           "CAP_NET_ADMIN for cgroup programs, or CAP_SYS_ADMIN)";
  }
  return " (refused although running as root: this kernel's configuration, lockdown or "
         "security policy does not allow this program type)";
}

class Probe {
 public:
  Probe(const std::string& object_path, const std::string& program_name,
        const ProbeOptions& options)
      : object_path_(object_path), options_(options) {
    result_.program = program_name;
  }

  ProbeResult run() {
    if (!open()) return result_;
    result_.stage = ProbeStage::kLoad;
    if (!load()) return result_;
    result_.stage = ProbeStage::kAttach;
    if (!attach()) return result_;
    result_.stage = ProbeStage::kTrigger;
    if (!trigger()) return result_;
    if (!read_hits()) return result_;
    result_.stage = ProbeStage::kDone;
    return result_;
  }

 private:
  // A failed call: what is the step, hint is gapwatch's reading of the cause.
  bool fail(int error_number, const std::string& what, const std::string& hint = "") {
    int reported = error_number;
    std::string reason;
    if (error_number <= 0) {
      reported = EINVAL;
      reason = "failed without an error code";
    } else if (error_number >= kLibbpfErrnoBase) {
      // libbpf's private codes (4000+) mean nothing to callers that speak errno.
      reported = EINVAL;
      char text[128];
      libbpf_strerror(error_number, text, sizeof text);
      reason = std::string(text) + " (libbpf error " + std::to_string(error_number) + ")";
    } else {
      reason = std::strerror(error_number);
    }
    return report(reported, what + ": " + reason + hint);
  }

  // A failure that no call reported an errno for, or whose errno is implied.
  bool report(int error_number, std::string message) {
    result_.error_number = error_number;
    std::size_t budget = kMaxErrorBytes > message.size() + 1 ? kMaxErrorBytes - message.size() - 1 : 0;
    std::string log = log_.tail(budget);
    if (!log.empty()) {
      message += "\n";
      message += log;
    }
    result_.error = message;
    return false;
  }

  bool open() {
    bpf_object* object = bpf_object__open_file(object_path_.c_str(), nullptr);
    if (object == nullptr) {
      int error_number = errno;
      return fail(error_number, "opening BPF object '" + object_path_ + "' failed");
    }
    object_.reset(object);

    std::string available;
    bpf_program* candidate = nullptr;
    bpf_object__for_each_program(candidate, object) {
      const char* name = bpf_program__name(candidate);
      if (result_.program == name) {
        program_ = candidate;
      }
      available += available.empty() ? "" : ", ";
      available += name;
    }
    if (program_ == nullptr) {
      return report(ENOENT, "program '" + result_.program + "' is not in '" + object_path_ +
                                "' (it has: " + available + ")");
    }
    result_.section = bpf_program__section_name(program_);

    hits_ = bpf_object__find_map_by_name(object, kHitsMapName);
    if (hits_ == nullptr) {
      return report(ENOENT,
                    std::string("map '") + kHitsMapName + "' is not in '" + object_path_ + "'");
    }

    if (attaches_to_cgroup(bpf_program__type(program_)) &&
        (!options_.cgroup_path || options_.cgroup_path->empty())) {
      throw ProbeUsageError("program '" + result_.program + "' (" + result_.section +
                            ") attaches to a cgroup: options.cgroupPath is required");
    }
    return true;
  }

  bool load() {
    bpf_program* each = nullptr;
    bpf_object__for_each_program(each, object_.get()) {
      int err = bpf_program__set_autoload(each, each == program_);
      if (err != 0) {
        return fail(-err, "disabling autoload of other programs failed");
      }
    }
    int err = bpf_object__load(object_.get());
    if (err != 0) {
      return fail(-err, "loading '" + result_.program + "' (" + result_.section + ") failed",
                  load_permission_hint(-err));
    }
    result_.loaded = true;
    return true;
  }

  bool attach() {
    bpf_link* link = nullptr;
    if (attaches_to_cgroup(bpf_program__type(program_))) {
      const std::string& path = *options_.cgroup_path;
      FileDescriptor cgroup(open_cgroup(path));
      if (cgroup.get() < 0) {
        int error_number = errno;
        return fail(error_number, "opening cgroup '" + path + "' failed");
      }
      link = bpf_program__attach_cgroup(program_, cgroup.get());
      if (link == nullptr) {
        int error_number = errno;
        return fail(error_number,
                    "attaching '" + result_.program + "' to cgroup '" + path + "' failed",
                    error_number == EBADF ? " (BPF programs attach only to cgroup v2 directories)"
                                          : "");
      }
    } else {
      link = bpf_program__attach(program_);
      if (link == nullptr) {
        int error_number = errno;
        return fail(error_number,
                    "attaching '" + result_.program + "' (" + result_.section + ") failed",
                    tracefs_hint(result_.section, error_number));
      }
    }
    link_.reset(link);
    result_.attached = true;
    return true;
  }

  static int open_cgroup(const std::string& path) {
    return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }

  bool trigger() {
    switch (trigger_for_section(result_.section)) {
      case Trigger::kFork:
        return trigger_fork();
      case Trigger::kConnect:
        return trigger_connect();
    }
    return report(EINVAL, "no trigger for section " + result_.section);
  }

  bool trigger_connect() {
    FileDescriptor sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (sock.get() < 0) {
      int error_number = errno;
      return fail(error_number, "trigger: socket(AF_INET, SOCK_DGRAM) failed");
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(kTriggerPort);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(sock.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      int error_number = errno;
      return fail(error_number, "trigger: UDP connect() to 127.0.0.1:9 failed");
    }
    return true;
  }

  bool trigger_fork() {
    pid_t child = fork();
    if (child < 0) {
      int error_number = errno;
      return fail(error_number, "trigger: fork() failed");
    }
    if (child == 0) {
      // Only async-signal-safe calls are allowed in the child of a
      // multi-threaded process; it exists just to make the fork happen.
      _exit(0);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
      if (errno != EINTR) {
        int error_number = errno;
        return fail(error_number, "trigger: waitpid() on the forked child failed");
      }
    }
    return true;
  }

  bool read_hits() {
    // bpf_get_current_pid_tgid() reports the tgid as the initial PID namespace
    // sees it, which equals getpid() outside of PID namespaces.
    std::uint32_t tgid = static_cast<std::uint32_t>(getpid());
    std::uint64_t count = 0;
    int err = bpf_map__lookup_elem(hits_, &tgid, sizeof tgid, &count, sizeof count, 0);
    if (err == -ENOENT) {
      std::string message = "attached, but '" + result_.program + "' did not fire for pid " +
                            std::to_string(tgid);
      if (attaches_to_cgroup(bpf_program__type(program_))) {
        message += " (is this process inside cgroup '" + *options_.cgroup_path + "'?)";
      }
      return report(0, message);
    }
    if (err != 0) {
      return fail(-err, "reading map '" + std::string(kHitsMapName) + "' failed");
    }
    result_.hits = count;
    result_.fired = count > 0;
    return true;
  }

  std::string object_path_;
  ProbeOptions options_;
  ProbeResult result_;
  // Declared before the libbpf objects so it is destroyed after them: libbpf
  // may still log while the link and object are torn down.
  LibbpfLogCapture log_;
  ObjectPtr object_;
  LinkPtr link_;
  bpf_program* program_ = nullptr;
  bpf_map* hits_ = nullptr;
};

}  // namespace

const char* probe_stage_name(ProbeStage stage) {
  switch (stage) {
    case ProbeStage::kOpen:
      return "open";
    case ProbeStage::kLoad:
      return "load";
    case ProbeStage::kAttach:
      return "attach";
    case ProbeStage::kTrigger:
      return "trigger";
    case ProbeStage::kDone:
      return "done";
  }
  return "unknown";
}

ProbeResult probe_program(const std::string& object_path, const std::string& program_name,
                          const ProbeOptions& options) {
  Probe probe(object_path, program_name, options);
  return probe.run();
}

}  // namespace gapwatch
