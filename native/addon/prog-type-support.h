#ifndef GAPWATCH_PROG_TYPE_SUPPORT_H
#define GAPWATCH_PROG_TYPE_SUPPORT_H

#include <optional>
#include <string>

#include <bpf/libbpf.h>

namespace gapwatch {

// Maps the names used by the JS API ("tracepoint", "raw_tracepoint",
// "tracing", "lsm", "cgroup_sock_addr", "kprobe") to kernel program types.
std::optional<bpf_prog_type> prog_type_from_name(const std::string& name);

// The accepted names, comma separated, for error messages.
std::string known_prog_type_names();

// Asks the kernel, by loading a minimal program of that type, whether the
// type is available to the calling process. Privilege and lockdown count: as
// an unprivileged user every type reads as unsupported. Throws
// std::system_error when libbpf cannot probe the type at all.
bool prog_type_supported(bpf_prog_type type);

}  // namespace gapwatch

#endif
