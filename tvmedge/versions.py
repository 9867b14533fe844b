"""The TVM and tvm-ffi versions a board runs: they must be the compiler's (setup.cfg pins the same ones).

A runtime of another version may not load the artifacts this compiler builds, and tvm-ffi 0.1.15.x segfaults
in MetaSchedule (design.md section 2), so emulated boards, cross-built runtimes and bundles all use these.
"""

TVM_VERSION = "0.27.0.post1"
TVM_FFI_VERSION = "0.1.14.post1"
