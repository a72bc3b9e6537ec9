#ifndef GAPWATCH_KERNEL_INFO_H
#define GAPWATCH_KERNEL_INFO_H

#include <string>

namespace gapwatch {

// Where the kernel exposes its own BTF; libbpf needs it for CO-RE relocations
// and for tp_btf/fentry/lsm attach points.
constexpr const char* kVmlinuxBtfPath = "/sys/kernel/btf/vmlinux";

struct KernelInfo {
  std::string release;
  std::string machine;
  bool btf_vmlinux;
  std::string libbpf_version;
};

// Throws std::system_error if uname(2) fails.
KernelInfo read_kernel_info();

}  // namespace gapwatch

#endif
