#include "prog-type-support.h"

#include <array>
#include <system_error>
#include <utility>

#include "libbpf-log.h"

namespace gapwatch {
namespace {

constexpr std::array<std::pair<const char*, bpf_prog_type>, 6> kProgTypes{{
    {"tracepoint", BPF_PROG_TYPE_TRACEPOINT},
    {"raw_tracepoint", BPF_PROG_TYPE_RAW_TRACEPOINT},
    {"tracing", BPF_PROG_TYPE_TRACING},
    {"lsm", BPF_PROG_TYPE_LSM},
    {"cgroup_sock_addr", BPF_PROG_TYPE_CGROUP_SOCK_ADDR},
    {"kprobe", BPF_PROG_TYPE_KPROBE},
}};

}  // namespace

std::optional<bpf_prog_type> prog_type_from_name(const std::string& name) {
  for (const auto& [known, type] : kProgTypes) {
    if (name == known) {
      return type;
    }
  }
  return std::nullopt;
}

std::string known_prog_type_names() {
  std::string names;
  for (const auto& entry : kProgTypes) {
    if (!names.empty()) {
      names += ", ";
    }
    names += entry.first;
  }
  return names;
}

bool prog_type_supported(bpf_prog_type type) {
  LibbpfLogCapture quiet;
  int result = libbpf_probe_bpf_prog_type(type, nullptr);
  if (result < 0) {
    throw std::system_error(-result, std::generic_category(),
                            "libbpf_probe_bpf_prog_type() cannot probe program type " +
                                std::to_string(static_cast<int>(type)));
  }
  return result == 1;
}

}  // namespace gapwatch
