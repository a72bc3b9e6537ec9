#include "kernel-info.h"

#include <bpf/libbpf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace gapwatch {

KernelInfo read_kernel_info() {
  struct utsname names {};
  if (uname(&names) != 0) {
    throw std::system_error(errno, std::generic_category(), "uname() failed");
  }
  KernelInfo info;
  info.release = names.release;
  info.machine = names.machine;
  // Readable, not just present: libbpf must read it as the calling user.
  info.btf_vmlinux = access(kVmlinuxBtfPath, R_OK) == 0;
  // The runtime library's version, which can differ from the headers built against.
  info.libbpf_version =
      std::to_string(libbpf_major_version()) + "." + std::to_string(libbpf_minor_version());
  return info;
}

}  // namespace gapwatch
