"""The native runtime, for boards without Python: tvmedge's C++ programs and the build of TVM's runtime per
architecture that they run on.

- ``src/``: ``tvmedge-run`` (the C++ loader: reads and checks the manifest as :mod:`tvmedge.runtime.manifest`
  does, runs the stages) and ``tvmedge-rpc-server`` (TVM's RPC server loop with its handshake in C++), plus
  their headers;
- :mod:`.builder`: ``native_runtime(arch)`` builds (once, cached) TVM's runtime libraries and those programs for
  an architecture — cross-built from the wheel's own sources for riscv64;
- ``third_party/tvm_support/``: TVM support headers the wheel lacks, vendored unchanged (its README says from
  where and under which license).
"""
