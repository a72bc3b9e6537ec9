#!/bin/sh
# Generates vmlinux.h (every kernel type as C) from the host kernel's BTF.
# Usage: gen-vmlinux-h.sh <btf-file> <output-header>
#
# The header is generated instead of committed: thanks to CO-RE one vmlinux.h
# serves every kernel, the probes need kernel BTF on the host at run time
# anyway, and a committed copy would be a ~3 MB generated file per arch.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 <btf-file> <output-header>" >&2
    exit 2
fi
btf=$1
out=$2

if [ ! -r "$btf" ]; then
    echo "gapwatch: kernel BTF not found at $btf." >&2
    echo "gapwatch: the eBPF probes are CO-RE and need a kernel built with CONFIG_DEBUG_INFO_BTF=y," >&2
    echo "gapwatch: both to generate vmlinux.h here and to load the probes at run time." >&2
    exit 1
fi

# Non-login root shells and npm scripts do not always have sbin on PATH,
# which is where Debian installs bpftool.
bpftool=${BPFTOOL:-}
if [ -z "$bpftool" ]; then
    for candidate in bpftool /usr/sbin/bpftool /sbin/bpftool /usr/local/sbin/bpftool; do
        if command -v "$candidate" >/dev/null 2>&1; then
            bpftool=$candidate
            break
        fi
    done
fi
if [ -z "$bpftool" ]; then
    echo "gapwatch: bpftool not found (install the bpftool package or set BPFTOOL=/path/to/bpftool)." >&2
    exit 1
fi

# Write next to the target and rename, so an interrupted dump never leaves a
# truncated header that make would consider up to date.
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
if ! "$bpftool" btf dump file "$btf" format c >"$tmp"; then
    echo "gapwatch: '$bpftool btf dump file $btf format c' failed." >&2
    exit 1
fi
mv -f "$tmp" "$out"
trap - EXIT
