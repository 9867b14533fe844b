/*
 * Errors of the native programs: the class name travels to the host in "Error: <Class>: message" lines
 * (tvmedge/emulator/common.py maps it back to the Python class).
 */
#ifndef TVMEDGE_NATIVE_ERRORS_H
#define TVMEDGE_NATIVE_ERRORS_H

#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

namespace tvmedge {

struct RunError : std::runtime_error {
  std::string kind;
  RunError(std::string kind, const std::string& message) : std::runtime_error(message), kind(std::move(kind)) {}
};
[[noreturn]] inline void ArtifactError(const std::string& m) { throw RunError("ArtifactError", m); }
[[noreturn]] inline void InputError(const std::string& m) { throw RunError("InputError", m); }

// The whole file, or nullopt when it cannot be opened (the caller says what that means).
inline std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace tvmedge

#endif  // TVMEDGE_NATIVE_ERRORS_H
