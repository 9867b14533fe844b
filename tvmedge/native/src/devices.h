/*
 * What devices this board has: the C++ twin of tvmedge/runtime/hal.py's probe, for boards without Python.
 * CPU and GPUs through TVM's runtime (a GPU counts only if the runtime has its device API and the device
 * exists); NPUs and FPGAs through their device nodes (TVM's runtime has no device type for them). The JSON is
 * HardwareAdapter("auto").summary()'s. Keep NPU_NODES / FPGA_NODES in step with hal.py (a test compares them).
 */
#ifndef TVMEDGE_NATIVE_DEVICES_H
#define TVMEDGE_NATIVE_DEVICES_H

#include <glob.h>
#include <tvm/ffi/any.h>
#include <tvm/runtime/device_api.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "arch.h"
#include "canonical_json.h"

namespace tvmedge {

inline const char* const kNpuNodes[] = {"dev/rknpu", "dev/accel/accel*", "dev/galcore", "dev/vipcore",
                                        "dev/apex_*", "dev/hailo*", "sys/class/misc/rknpu"};
inline const char* const kFpgaNodes[] = {"sys/class/fpga_manager/fpga*", "dev/xdma*", "dev/xclmgmt*",
                                         "dev/intel-fpga-*"};
// hal.py's GPU_BACKENDS, in its order of preference, with their DLPack device types.
inline const std::pair<const char*, DLDeviceType> kGpuBackends[] = {
    {"cuda", kDLCUDA}, {"rocm", kDLROCM}, {"vulkan", kDLVulkan}, {"opencl", kDLOpenCL}, {"metal", kDLMetal}};

inline std::string JsonText(const std::string& s) {
  std::string out;
  DumpString(s, &out);
  return out;
}

inline std::string DeviceEntry(const std::string& kind, const std::string& backend, bool present, bool tvm_device,
                               const std::string& detail) {
  return "{\"kind\": " + JsonText(kind) + ", \"backend\": " + JsonText(backend) + ", \"present\": " +
         (present ? "true" : "false") + ", \"tvm_device\": " + (tvm_device ? "true" : "false") +
         ", \"detail\": " + JsonText(detail) + "}";
}

// {"arch", "requested": "auto", "chosen": {"kind", "backend"}, "devices": [...]} as one JSON line.
inline std::string DevicesSummary(const std::string& root) {
  const std::string arch = MachineArch();
  std::vector<std::string> entries;
  entries.push_back(DeviceEntry("cpu", "cpu", true, true, arch + ", " +
                                std::to_string(std::thread::hardware_concurrency()) + " logical cores"));
  std::string chosen_kind = "cpu", chosen_backend = "cpu";
  for (const auto& [backend, type] : kGpuBackends) {
    bool present = false;
    DLDevice dev{type, 0};
    if (tvm::runtime::DeviceAPI* api = tvm::runtime::DeviceAPI::Get(dev, /*allow_missing=*/true)) {
      tvm::ffi::Any exists;
      api->GetAttr(dev, tvm::runtime::kExist, &exists);
      present = exists.as<int64_t>().value_or(0) != 0 || exists.as<bool>().value_or(false);
    }
    if (present && chosen_kind == "cpu") chosen_kind = "gpu", chosen_backend = backend;
    entries.push_back(DeviceEntry("gpu", backend, present, true, present ? std::string(backend) + ":0" : "not present"));
  }
  auto nodes = [&](const char* const* patterns, size_t count) {
    std::set<std::string> found;
    for (size_t i = 0; i < count; ++i) {
      std::string pattern = root + (root.empty() || root.back() == '/' ? "" : "/") + patterns[i];
      glob_t g{};
      if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
        for (size_t k = 0; k < g.gl_pathc; ++k) found.insert(g.gl_pathv[k]);
      globfree(&g);
    }
    return found;
  };
  auto npu = nodes(kNpuNodes, sizeof(kNpuNodes) / sizeof(*kNpuNodes));
  auto fpga = nodes(kFpgaNodes, sizeof(kFpgaNodes) / sizeof(*kFpgaNodes));
  entries.push_back(DeviceEntry("npu", "device node", !npu.empty(), false, npu.empty() ? "not present" : *npu.begin()));
  entries.push_back(DeviceEntry("fpga", "device node", !fpga.empty(), false, fpga.empty() ? "not present" : *fpga.begin()));
  std::string devices;
  for (size_t i = 0; i < entries.size(); ++i) devices += (i ? ", " : "") + entries[i];
  return "{\"arch\": " + JsonText(arch) + ", \"requested\": \"auto\", \"chosen\": {\"kind\": " +
         JsonText(chosen_kind) + ", \"backend\": " + JsonText(chosen_backend) + "}, \"devices\": [" + devices + "]}";
}

}  // namespace tvmedge

#endif  // TVMEDGE_NATIVE_DEVICES_H
