{
  # One `node-gyp rebuild` produces, in build/Release/:
  #   probe.bpf.o          eBPF capability probes (compiled with clang -target bpf)
  #   sensor.bpf.o         the host sensor's programs (native/bpf/sensor.bpf.c)
  #   gapwatch_native.node N-API addon that loads them through libbpf
#   gapwatch_gateway.node the gateway's native core: the journal's hash chain (OpenSSL, zlib)
  # vmlinux.h is generated from the host's kernel BTF into the build tree,
  # never committed; see native/README.md.
  'variables': {
    # Override with `node-gyp rebuild -- -Dvmlinux_btf=/path/to/btf`.
    'vmlinux_btf%': '/sys/kernel/btf/vmlinux',
  },
  'targets': [
    {
      'target_name': 'vmlinux_h',
      'type': 'none',
      'actions': [
        {
          'action_name': 'generate_vmlinux_h',
          # The BTF file is deliberately not an input: when it is missing,
          # make would stop with "No rule to make target" instead of the
          # script's explanation. CO-RE makes regenerating on every kernel
          # change unnecessary.
          'inputs': ['native/tools/gen-vmlinux-h.sh'],
          'outputs': ['<(SHARED_INTERMEDIATE_DIR)/bpf/vmlinux.h'],
          'action': ['sh', 'native/tools/gen-vmlinux-h.sh', '<(vmlinux_btf)', '<@(_outputs)'],
          'message': 'Generating vmlinux.h from <(vmlinux_btf)',
        },
      ],
    },
    {
      'target_name': 'probe_bpf',
      'type': 'none',
      'dependencies': ['vmlinux_h'],
      'actions': [
        {
          'action_name': 'compile_probe_bpf',
          'inputs': [
            'native/tools/compile-bpf.sh',
            'native/bpf/probe.bpf.c',
            '<(SHARED_INTERMEDIATE_DIR)/bpf/vmlinux.h',
          ],
          'outputs': ['<(PRODUCT_DIR)/probe.bpf.o'],
          'action': [
            'sh', 'native/tools/compile-bpf.sh',
            '<(target_arch)',
            '<(SHARED_INTERMEDIATE_DIR)/bpf',
            'native/bpf/probe.bpf.c',
            '<@(_outputs)',
          ],
          'message': 'Compiling eBPF object probe.bpf.o',
        },
      ],
    },
    {
      'target_name': 'sensor_bpf',
      'type': 'none',
      'dependencies': ['vmlinux_h'],
      'actions': [
        {
          'action_name': 'compile_sensor_bpf',
          'inputs': [
            'native/tools/compile-bpf.sh',
            'native/bpf/sensor.bpf.c',
            'native/bpf/events.h',
            '<(SHARED_INTERMEDIATE_DIR)/bpf/vmlinux.h',
          ],
          'outputs': ['<(PRODUCT_DIR)/sensor.bpf.o'],
          'action': [
            'sh', 'native/tools/compile-bpf.sh',
            '<(target_arch)',
            '<(SHARED_INTERMEDIATE_DIR)/bpf',
            'native/bpf/sensor.bpf.c',
            '<@(_outputs)',
          ],
          'message': 'Compiling eBPF object sensor.bpf.o',
        },
      ],
    },
    {
      'target_name': 'gapwatch_native',
      'dependencies': [
        'probe_bpf',
        'sensor_bpf',
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all",
      ],
      'sources': [
        'native/addon/addon.cc',
        'native/addon/kernel-info.cc',
        'native/addon/libbpf-log.cc',
        'native/addon/prog-type-support.cc',
        'native/addon/program-probe.cc',
        'native/addon/ring-reader.cc',
        'native/addon/sensor-binding.cc',
        'native/addon/sensor-session.cc',
      ],
      'defines': ['NAPI_VERSION=8'],
      'cflags_cc': ['-std=c++17', '-Wall', '-Wextra'],
      'libraries': ['-lbpf', '-lelf', '-lz'],
    },
    {
      # The gateway's native core: the audit journal's hash chain (native/addon/journal-chain.*):
      # SHA-256, CRC-32 and the segment write of every record, which the native data paths will
      # append to as well. No libbpf: a gateway-only host needs OpenSSL and zlib.
      'target_name': 'gapwatch_gateway',
      'dependencies': [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all",
      ],
      'sources': [
        'native/addon/gateway-addon.cc',
        'native/addon/journal-chain.cc',
        'native/addon/proto-writer.cc',
        'native/addon/session-event.cc',
        'native/addon/record-input.cc',
        'native/addon/pg-records.cc',
        'native/addon/pg-records-binding.cc',
        'native/addon/http-records.cc',
        'native/addon/http-records-binding.cc',
        'native/addon/http-framing.cc',
        'native/addon/http-framing-binding.cc',
        'native/addon/pg-datapath.cc',
        'native/addon/chain-syncer.cc',
        'native/addon/http-datapath.cc',
        'native/addon/literal-shape.cc',
      ],
      'defines': ['NAPI_VERSION=8'],
      'cflags_cc': ['-std=c++17', '-Wall', '-Wextra', '-O2'],
      'libraries': ['-lcrypto', '-lz'],
    },
  ],
}
