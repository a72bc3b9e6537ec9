#include "sensor-session.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "libbpf-log.h"

namespace gapwatch {
namespace {

constexpr const char* kVmlinuxBtf = "/sys/kernel/btf/vmlinux";
constexpr int kLibbpfErrnoBase = 4000;
constexpr std::size_t kMaxLogBytes = 1024;

// The cgroup/connect_unix attach type: its number comes from the running
// kernel's BTF (enum bpf_attach_type), because the uapi headers and libbpf
// on the build host may predate it. -1 when the kernel lacks the hook.
int unix_connect_attach_type() {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (vmlinux == nullptr) return -1;
  int value = -1;
  int id = btf__find_by_name_kind(vmlinux, "bpf_attach_type", BTF_KIND_ENUM);
  if (id > 0) {
    const btf_type* type = btf__type_by_id(vmlinux, id);
    const struct btf_enum* entries = btf_enum(type);
    for (int i = 0; i < btf_vlen(type); ++i) {
      if (std::strcmp(btf__name_by_offset(vmlinux, entries[i].name_off), "BPF_CGROUP_UNIX_CONNECT") == 0) {
        value = entries[i].val;
        break;
      }
    }
  }
  btf__free(vmlinux);
  return value;
}

std::string describe_errno(int error_number) {
  if (error_number >= kLibbpfErrnoBase) {
    char text[128];
    libbpf_strerror(error_number, text, sizeof text);
    return std::string(text) + " (libbpf error " + std::to_string(error_number) + ")";
  }
  if (error_number <= 0) return "failed without an error code";
  return std::strerror(error_number);
}

bool is_cgroup_program(bpf_program* program) {
  return bpf_program__type(program) == BPF_PROG_TYPE_CGROUP_SOCK_ADDR;
}

}  // namespace

SensorSession::SensorSession(const SensorOptions& options) : options_(options) {
  LibbpfLogCapture log;
  try {
    open();
    configure();
    load();
    attach();
  } catch (const SensorError& error) {
    std::string message = error.what();
    std::string tail = log.tail(kMaxLogBytes);
    if (!tail.empty()) message += "\n" + tail;
    release();
    throw SensorError(error.code(), message);
  }
}

SensorSession::~SensorSession() { release(); }

void SensorSession::release() {
  for (bpf_link* link : links_) bpf_link__destroy(link);
  links_.clear();
  if (task_iter_ != nullptr) bpf_link__destroy(task_iter_);
  task_iter_ = nullptr;
  if (object_ != nullptr) bpf_object__close(object_);
  object_ = nullptr;
}

void SensorSession::fail(const std::string& code, const std::string& what, int error_number,
                         const std::string& hint) {
  throw SensorError(code, what + ": " + describe_errno(error_number) + hint);
}

void SensorSession::open() {
  struct stat info {};
  if (stat(kVmlinuxBtf, &info) != 0) {
    throw SensorError("SENSOR_ERR_NO_BTF",
                      std::string("the kernel exposes no BTF (") + kVmlinuxBtf +
                          " is missing): the sensor's CO-RE programs need a kernel built with "
                          "CONFIG_DEBUG_INFO_BTF=y");
  }
  object_ = bpf_object__open_file(options_.object_path.c_str(), nullptr);
  if (object_ == nullptr) {
    int error_number = errno;
    object_ = nullptr;
    fail("SENSOR_ERR_BPF_UNAVAILABLE", "opening BPF object '" + options_.object_path + "' failed",
         error_number, " (rebuild with `npm run setup`)");
  }
  events_ = bpf_object__find_map_by_name(object_, "events");
  drops_ = bpf_object__find_map_by_name(object_, "drops");
  if (events_ == nullptr || drops_ == nullptr) {
    throw SensorError("SENSOR_ERR_BPF_UNAVAILABLE",
                      "'" + options_.object_path + "' is not the sensor object (no events/drops maps)");
  }
}

// Sets a `const volatile` global of the object's .rodata before load.
static void set_rodata(bpf_object* object, const char* name, const void* value, std::size_t size) {
  bpf_map* rodata = nullptr;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object) {
    const char* map_name = bpf_map__name(map);
    std::size_t length = std::strlen(map_name);
    if (length >= 7 && std::strcmp(map_name + length - 7, ".rodata") == 0) rodata = map;
  }
  btf* object_btf = bpf_object__btf(object);
  int section_id = object_btf ? btf__find_by_name_kind(object_btf, ".rodata", BTF_KIND_DATASEC) : -1;
  if (rodata == nullptr || section_id <= 0) {
    throw SensorError("SENSOR_ERR_BPF_UNAVAILABLE", std::string("the sensor object has no .rodata for ") + name);
  }
  std::size_t data_size = 0;
  const void* initial = bpf_map__initial_value(rodata, &data_size);
  std::vector<unsigned char> data(static_cast<const unsigned char*>(initial),
                                  static_cast<const unsigned char*>(initial) + data_size);
  const btf_type* section = btf__type_by_id(object_btf, section_id);
  const btf_var_secinfo* vars = btf_var_secinfos(section);
  for (int i = 0; i < btf_vlen(section); ++i) {
    const btf_type* var = btf__type_by_id(object_btf, vars[i].type);
    if (std::strcmp(btf__name_by_offset(object_btf, var->name_off), name) != 0) continue;
    if (vars[i].size != size || vars[i].offset + size > data.size()) break;
    std::memcpy(data.data() + vars[i].offset, value, size);
    int err = bpf_map__set_initial_value(rodata, data.data(), data.size());
    if (err != 0) throw SensorError("SENSOR_ERR_BPF_UNAVAILABLE", std::string("setting ") + name + " failed");
    return;
  }
  throw SensorError("SENSOR_ERR_BPF_UNAVAILABLE", std::string("the sensor object has no rodata variable ") + name);
}

void SensorSession::configure() {
  std::uint32_t argv_max = options_.argv_max_bytes;
  if (argv_max > GW_ARGV_AREA) argv_max = GW_ARGV_AREA;
  set_rodata(object_, "argv_max", &argv_max, sizeof argv_max);
  set_rodata(object_, "wakeup_bytes", &options_.wakeup_bytes, sizeof options_.wakeup_bytes);

  int err = bpf_map__set_max_entries(events_, options_.ring_bytes);
  if (err != 0) fail("SENSOR_ERR_BPF_UNAVAILABLE", "sizing the ring buffer failed", -err);
  cpus_ = libbpf_num_possible_cpus();
  if (cpus_ <= 0) fail("SENSOR_ERR_BPF_UNAVAILABLE", "counting CPUs failed", -cpus_);
  bpf_map* scratch = bpf_object__find_map_by_name(object_, "exec_scratch");
  if (scratch == nullptr || bpf_map__set_max_entries(scratch, cpus_) != 0) {
    throw SensorError("SENSOR_ERR_BPF_UNAVAILABLE", "sizing exec_scratch to the CPU count failed");
  }

  bpf_program* unix_connect = bpf_object__find_program_by_name(object_, "sensor_connect_unix");
  if (unix_connect != nullptr) {
    int attach_type = unix_connect_attach_type();
    if (attach_type >= 0) {
      bpf_program__set_expected_attach_type(unix_connect, static_cast<bpf_attach_type>(attach_type));
      unix_connect_hook_ = true;
    } else {
      bpf_program__set_autoload(unix_connect, false);
    }
  }
}

void SensorSession::load() {
  int err = bpf_object__load(object_);
  if (err == 0) return;
  int error_number = -err;
  if (error_number == EPERM && geteuid() != 0) {
    throw SensorError("SENSOR_ERR_NOT_ROOT",
                      "loading the sensor's BPF programs was refused (EPERM): not running as root. "
                      "The sensor needs root, or CAP_BPF with CAP_PERFMON and CAP_NET_ADMIN; "
                      "run it as root, and `gapwatch doctor` for details");
  }
  fail("SENSOR_ERR_BPF_UNAVAILABLE", "loading the sensor's BPF programs failed", error_number,
       error_number == EPERM ? " (refused although running as root: lockdown or security policy; "
                               "run `gapwatch doctor`)"
                             : "");
}

void SensorSession::attach() {
  int cgroup = ::open(options_.cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgroup < 0) {
    int error_number = errno;
    fail("SENSOR_ERR_ATTACH", "opening the cgroup v2 root '" + options_.cgroup_path + "' failed",
         error_number);
  }
  bpf_program* program = nullptr;
  bpf_object__for_each_program(program, object_) {
    if (!bpf_program__autoload(program)) continue;
    const char* name = bpf_program__name(program);
    if (bpf_program__type(program) == BPF_PROG_TYPE_TRACING &&
        bpf_program__expected_attach_type(program) == BPF_TRACE_ITER) {
      // An iterator runs on demand (task_starts), it observes nothing while attached.
      task_iter_ = bpf_program__attach_iter(program, nullptr);
      if (task_iter_ == nullptr) {
        int error_number = errno;
        close(cgroup);
        fail("SENSOR_ERR_ATTACH", std::string("attaching the task iterator ") + name + " failed", error_number);
      }
      continue;
    }
    bpf_link* link = is_cgroup_program(program) ? bpf_program__attach_cgroup(program, cgroup)
                                                : bpf_program__attach(program);
    if (link == nullptr) {
      int error_number = errno;
      close(cgroup);
      std::string hint;
      if (error_number == ENOENT && !is_cgroup_program(program)) {
        hint = " (classic tracepoints need tracefs mounted at /sys/kernel/tracing)";
      }
      fail("SENSOR_ERR_ATTACH", std::string("attaching ") + name + " (" +
                                    bpf_program__section_name(program) + ") failed",
           error_number, hint);
    }
    links_.push_back(link);
    attached_.push_back(name);
  }
  close(cgroup);
}

int SensorSession::ring_fd() const { return bpf_map__fd(events_); }

std::vector<gw_task_start> SensorSession::task_starts() const {
  int fd = bpf_iter_create(bpf_link__fd(task_iter_));
  if (fd < 0) {
    throw SensorError("SENSOR_ERR_BPF_UNAVAILABLE",
                      std::string("running the task iterator failed: ") + std::strerror(-fd));
  }
  std::vector<gw_task_start> starts;
  std::vector<char> bytes;
  char chunk[16384];
  for (;;) {
    ssize_t got = read(fd, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      int error_number = errno;
      close(fd);
      throw SensorError("SENSOR_ERR_BPF_UNAVAILABLE",
                        std::string("reading the task iterator failed: ") + std::strerror(error_number));
    }
    if (got == 0) break;
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  close(fd);
  starts.resize(bytes.size() / sizeof(gw_task_start));
  std::memcpy(starts.data(), bytes.data(), starts.size() * sizeof(gw_task_start));
  return starts;
}

KernelDrops SensorSession::read_drops() const {
  KernelDrops drops;
  drops.per_type.assign(GW_EVENT_TYPE_COUNT, 0);
  drops.per_cpu.assign(GW_EVENT_TYPE_COUNT, std::vector<std::uint64_t>(cpus_, 0));
  std::vector<std::uint64_t> values(cpus_);
  for (std::uint32_t type = 0; type < GW_EVENT_TYPE_COUNT; ++type) {
    if (bpf_map_lookup_elem(bpf_map__fd(drops_), &type, values.data()) != 0) continue;
    for (int cpu = 0; cpu < cpus_; ++cpu) {
      drops.per_cpu[type][cpu] = values[cpu];
      drops.per_type[type] += values[cpu];
    }
  }
  return drops;
}

}  // namespace gapwatch
