#!/bin/sh
# Compiles one eBPF C source into a BPF ELF object for libbpf.
# Usage: compile-bpf.sh <gyp-target-arch> <vmlinux-h-dir> <source.bpf.c> <output.o>
#
# __TARGET_ARCH_<arch> tells bpf_tracing.h which pt_regs layout to use, so it
# must match the architecture the addon is built for, not the BPF target.
set -eu

if [ "$#" -ne 4 ]; then
    echo "usage: $0 <gyp-target-arch> <vmlinux-h-dir> <source.bpf.c> <output.o>" >&2
    exit 2
fi
build_arch=$1
vmlinux_dir=$2
src=$3
out=$4

case "$build_arch" in
    x64 | x86_64 | amd64) bpf_arch=x86 ;;
    arm64 | aarch64) bpf_arch=arm64 ;;
    *)
        echo "gapwatch: no eBPF target arch mapping for build arch '$build_arch' (supported: x64, arm64)." >&2
        exit 1
        ;;
esac

libbpf_include=${LIBBPF_INCLUDE_DIR:-/usr/include}
if [ ! -r "$libbpf_include/bpf/bpf_helpers.h" ]; then
    echo "gapwatch: libbpf headers not found in $libbpf_include/bpf (install libbpf-dev or set LIBBPF_INCLUDE_DIR)." >&2
    exit 1
fi

clang=${BPF_CLANG:-clang}
if ! command -v "$clang" >/dev/null 2>&1; then
    echo "gapwatch: '$clang' not found; building the eBPF probes needs clang (or set BPF_CLANG)." >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"
# -g is not optional: it emits the .BTF sections that CO-RE relocations,
# tp_btf/fentry/lsm attachment and libbpf's map definitions rely on.
exec "$clang" -O2 -g -Wall -target bpf "-D__TARGET_ARCH_$bpf_arch" \
    -I "$vmlinux_dir" -I "$libbpf_include" \
    -c "$src" -o "$out"
