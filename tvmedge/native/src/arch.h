/*
 * This machine's architecture as artifacts name it (x86_64, aarch64, riscv64): the C++ twin of
 * tvmedge/runtime/manifest.py's machine_arch().
 */
#ifndef TVMEDGE_NATIVE_ARCH_H
#define TVMEDGE_NATIVE_ARCH_H

#include <sys/utsname.h>

#include <string>

namespace tvmedge {

inline std::string MachineArch() {
  struct utsname u;
  uname(&u);
  std::string m = u.machine;
  if (m == "arm64") return "aarch64";
  if (m == "amd64") return "x86_64";
  return m;
}

}  // namespace tvmedge

#endif  // TVMEDGE_NATIVE_ARCH_H
