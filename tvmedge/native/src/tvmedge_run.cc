/*
 * tvmedge-run: the C++ loader of tvmedge artifacts, for boards without Python (RISC-V boards, small images).
 *
 * It reads the same manifest.json as the Python loader (tvmedge/runtime/manifest.py) and refuses what it
 * refuses: another format or version, a manifest edited after the build (its digest), a file whose sha256
 * differs, an artifact for another architecture, inputs of the wrong name, shape or dtype. It needs nothing
 * but TVM's runtime (libtvm_runtime.so + libtvm_ffi.so) and the C++ standard library.
 *
 *   tvmedge-run ARTIFACT [--inputs NAME=file.npy ...] [--random] [--output-dir DIR] [--repeat N] [--json]
 *               [--duration SECONDS] [--times] [--trust PUBLIC_KEY ...] [--decrypt KEYFILE] [--allow-version-mismatch]
 *   tvmedge-run --devices [--root DIR]       the board's devices, as `python -m tvmedge.runtime.hal --json`
 *   tvmedge-run --manifest ARTIFACT          the manifest as this loader reads it (typed view, one JSON line)
 *
 * --duration runs back to back for that long after the first run (instead of --repeat runs); --times adds
 * every run's latency to the report (what `tvmedge certify` summarises). --trust (a .pem public key or a folder
 * of them, repeatable; default $TVMEDGE_TRUSTED_KEYS) refuses an artifact not signed by one of those keys
 * (trust.h), before any library is opened. An artifact built with another TVM / tvm-ffi than this runtime's is
 * refused naming both versions, unless --allow-version-mismatch. An encrypted artifact needs --decrypt KEYFILE (or
 * $TVMEDGE_DECRYPTION_KEY): its libraries are decrypted into memory (a memfd) and loaded from there.
 *
 * Inputs and outputs are .npy files (outputs: DIR/output_<i>.npy, in the manifest's order). With --json the
 * last stdout line is the same {"stats": {...}, "outputs": {...}} object the Python runtime prints. Errors are
 * one line on stderr, "Error: <ArtifactError|InputError>: message", and exit code 1.
 *
 * Written here rather than reused: the Python loader cannot run where there is no Python, and TVM ships no
 * manifest-aware C++ runner (its C++ RPC app runs modules, not artifacts). Pieces: errors.h,
 * sha256.h, canonical_json.h (the manifest digest), manifest.h, npy.h; this file runs the model.
 */
#include <dlpack/dlpack.h>
#include <sys/mman.h>
#include <unistd.h>
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>
#include <tvm/runtime/tensor.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "canonical_json.h"
#include "devices.h"
#include "errors.h"
#include "manifest.h"
#include "npy.h"
#include "trust.h"

namespace ffi = tvm::ffi;
using tvm::runtime::Tensor;
using namespace tvmedge;  // NOLINT: one program, its own pieces

namespace {

// ------------------------------------------------------------------------------------------------------------
// running

Tensor ToDevice(const Array& a) {
  Tensor t = Tensor::Empty(ffi::Shape(a.shape), a.dtype->dl, DLDevice{kDLCPU, 0});
  t.CopyFromBytes(a.data.data(), a.data.size());
  return t;
}

Array FromDevice(const Tensor& t) {
  Array a;
  a.shape.assign(t->shape, t->shape + t->ndim);
  a.dtype = ByDL(t->dtype);
  if (!a.dtype) ArtifactError("the model returned a dtype this loader cannot write");
  size_t count = 1;
  for (int64_t d : a.shape) count *= size_t(d);
  a.data.resize(count * ((t->dtype.bits + 7) / 8));
  t.CopyToBytes(a.data.data(), a.data.size());
  return a;
}

void Flatten(const ffi::Any& result, std::vector<Tensor>* out) {
  if (auto t = result.as<Tensor>()) { out->push_back(*t); return; }
  if (auto arr = result.as<ffi::Array<ffi::Any>>()) {
    for (const ffi::Any& item : *arr) Flatten(item, out);
    return;
  }
  ArtifactError("the model returned something other than tensors");
}

struct Runner {
  struct Loaded {
    ffi::Module library, vm;
    ffi::Function main;
  };
  const Manifest& m;
  std::vector<Stage> stages;  // the manifest's, typed: a single-library artifact is one stage
  std::vector<Loaded> loaded;

  // An encrypted library is decrypted into an anonymous memfd and opened through /proc/self/fd: no plaintext
  // touches the file system. LoadFromFile picks the loader by extension, which that path lacks, so the ".so"
  // loader is called by name.
  static ffi::Module LoadDecrypted(const std::string& plain, const std::string& name) {
    int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
    if (fd < 0) ArtifactError("cannot create an in-memory file for " + name);
    for (size_t done = 0; done < plain.size();) {
      ssize_t n = write(fd, plain.data() + done, plain.size() - done);
      if (n <= 0) { close(fd); ArtifactError("cannot write the decrypted " + name + " to memory"); }
      done += size_t(n);
    }
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    try {
      ffi::Module library = ffi::Function::GetGlobalRequired("ffi.Module.load_from_file.so")(path, "so").cast<ffi::Module>();
      close(fd);
      return library;
    } catch (...) {
      close(fd);
      throw;
    }
  }

  Runner(const Manifest& manifest, const std::optional<SecretKey>& secret) : m(manifest), stages(manifest.Stages()) {
    for (const Stage& st : stages) {
      std::string path = m.dir + "/" + st.library;
      bool encrypted = std::find(m.encrypted.begin(), m.encrypted.end(), st.library) != m.encrypted.end();
      std::string plain = encrypted ? DecryptLibrary(path, st.library, *secret) : "";
      try {
        ffi::Module library = encrypted ? LoadDecrypted(plain, st.library) : ffi::Module::LoadFromFile(path);
        ffi::Module vm = library->GetFunction("vm_load_executable").value()().cast<ffi::Module>();
        // (device type, id, allocator) for the CPU, which is also the host: as tvm.runtime.vm.VirtualMachine
        vm->GetFunction("vm_initialization").value()(int(kDLCPU), 0, 2);
        loaded.push_back({library, vm, vm->GetFunction("main").value()});
      } catch (const ffi::Error& err) {
        ArtifactError("cannot load " + path + ": " + std::string(err.message()));
      } catch (const std::bad_optional_access&) {
        ArtifactError("cannot load " + path + ": it is not a Relax VM executable");
      }
    }
  }

  std::vector<Tensor> Run(const std::vector<Tensor>& inputs) {
    std::map<std::string, Tensor> tensors;
    for (size_t i = 0; i < m.inputs.size(); ++i) tensors.emplace(m.inputs[i].name, inputs[i]);
    for (size_t s = 0; s < stages.size(); ++s) {
      const Stage& st = stages[s];
      std::vector<ffi::AnyView> args;
      for (const TensorSpec& spec : st.inputs) {
        auto it = tensors.find(spec.name);
        if (it == tensors.end()) ArtifactError(m.dir + ": stage " + std::to_string(st.index) + " reads '" + spec.name +
                                               "', which no earlier stage produces");
        args.push_back(it->second);
      }
      ffi::Any result;
      loaded[s].main.CallPacked(args.data(), int(args.size()), &result);
      std::vector<Tensor> values;
      Flatten(result, &values);
      if (values.size() != st.outputs.size())
        ArtifactError("stage " + std::to_string(s) + " returned " + std::to_string(values.size()) +
                      " tensors, the plan lists " + std::to_string(st.outputs.size()));
      for (size_t i = 0; i < values.size(); ++i) tensors[st.outputs[i].name] = values[i];
    }
    std::vector<Tensor> outputs;
    for (const std::string& name : m.OutputNames()) {
      auto it = tensors.find(name);
      if (it == tensors.end()) ArtifactError(m.dir + ": the plan's output '" + name + "' is produced by no stage");
      outputs.push_back(it->second);
    }
    if (outputs.size() != m.outputs.size())
      ArtifactError("model returned " + std::to_string(outputs.size()) + " outputs, manifest lists " +
                    std::to_string(m.outputs.size()));
    return outputs;
  }
};

std::vector<Array> ReadInputs(const Manifest& m, const std::vector<std::string>& items, bool random) {
  std::map<std::string, Array> given;
  for (const std::string& item : items) {
    size_t eq = item.find('=');
    std::string name = eq == std::string::npos ? "" : item.substr(0, eq);
    std::string file = eq == std::string::npos ? item : item.substr(eq + 1);
    if (name.empty()) {
      if (m.inputs.size() != 1) InputError("model has " + std::to_string(m.inputs.size()) +
                                           " inputs; pass NAME=file.npy for each");
      name = m.inputs[0].name;
    }
    given[name] = ReadNpy(file);
  }
  for (const auto& item : given) {  // unknown names first, as the Python loader checks them
    bool known = false;
    for (const TensorSpec& s : m.inputs) known = known || s.name == item.first;
    if (!known) {
      std::string names;
      for (const TensorSpec& s : m.inputs) names += (names.empty() ? "" : ", ") + s.name;
      InputError("unknown input '" + item.first + "'; the model's inputs are: " + names);
    }
  }
  std::vector<Array> arrays;
  std::mt19937_64 rng(0);
  for (const TensorSpec& spec : m.inputs) {
    const DType* dtype = ByName(spec.dtype);
    if (!dtype) ArtifactError("input '" + spec.name + "' has dtype " + spec.dtype + ", which this loader cannot read");
    auto it = given.find(spec.name);
    if (it == given.end()) {
      if (!random && !items.empty())
        InputError("missing input '" + spec.name + "' (expected " + spec.name + " " + ShapeText(spec.shape) + " " +
                   spec.dtype + ")");
      // no inputs given: seeded values (floats in [0, 1), integers in [0, 10)), not numpy's random stream
      Array a{spec.shape, dtype, {}};
      size_t count = 1;
      for (int64_t d : spec.shape) count *= size_t(d);
      a.data.resize(count * ((dtype->dl.bits + 7) / 8));
      for (size_t i = 0; i < count; ++i) {
        double u = std::uniform_real_distribution<double>(0, 1)(rng);
        if (dtype->dl.code == kDLFloat && dtype->dl.bits == 32) reinterpret_cast<float*>(a.data.data())[i] = float(u);
        else if (dtype->dl.code == kDLFloat && dtype->dl.bits == 64) reinterpret_cast<double*>(a.data.data())[i] = u;
        else if (dtype->dl.bits == 8) a.data[i] = char(int(u * (dtype->dl.code == kDLBool ? 2 : 10)));
        else if (dtype->dl.bits == 32) reinterpret_cast<int32_t*>(a.data.data())[i] = int32_t(u * 10);
        else if (dtype->dl.bits == 64) reinterpret_cast<int64_t*>(a.data.data())[i] = int64_t(u * 10);
        else ArtifactError("no random inputs of dtype " + spec.dtype + "; pass --inputs");
      }
      arrays.push_back(std::move(a));
      continue;
    }
    const Array& a = it->second;
    if (a.shape != spec.shape || a.dtype != dtype)
      InputError("input '" + spec.name + "': expected shape " + ShapeText(spec.shape) + " " + spec.dtype +
                 ", got " + ShapeText(a.shape) + " " + a.dtype->name);
    arrays.push_back(a);
  }
  return arrays;
}

double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string Num(double v) {
  std::string s;
  DumpFloat(v, &s);
  return s;
}

// The versions of TVM and tvm-ffi this loader's runtime was built from (the builder passes them; they are the
// versions the compiler pins, tvmedge/versions.py).
#ifndef TVMEDGE_TVM_VERSION
#define TVMEDGE_TVM_VERSION ""
#endif
#ifndef TVMEDGE_TVM_FFI_VERSION
#define TVMEDGE_TVM_FFI_VERSION ""
#endif

void CheckVersions(const Manifest& m) {
  const std::pair<const char*, std::pair<std::string, std::string>> pins[] = {
      {"TVM", {m.tvm_version, TVMEDGE_TVM_VERSION}}, {"tvm-ffi", {m.tvm_ffi_version, TVMEDGE_TVM_FFI_VERSION}}};
  for (const auto& [name, versions] : pins) {
    const auto& [built, here] = versions;
    if (!built.empty() && !here.empty() && built != here)
      ArtifactError(m.dir + " was built with " + name + " " + built + ", this runtime is " + name + " " + here +
                    ": rebuild it with this version (or pass --allow-version-mismatch if you know it is compatible)");
  }
}

int Main(int argc, char** argv) {
  std::string artifact, output_dir;
  std::vector<std::string> inputs;
  bool json = false, random = false, all_times = false, devices = false, print_manifest = false;
  bool allow_version_mismatch = false;
  std::vector<std::string> trust;
  std::string decrypt;
  std::string root = "/";
  long repeat = 1;
  double duration = -1;
  const char* usage =
      "usage: tvmedge-run ARTIFACT [--inputs NAME=file.npy ...] [--random] [--output-dir DIR] [--repeat N] "
      "[--duration SECONDS] [--times] [--json] [--trust PUBLIC_KEY ...] [--decrypt KEYFILE] [--allow-version-mismatch] | "
      "tvmedge-run --devices [--root DIR] | tvmedge-run --manifest ARTIFACT";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) InputError(a + " needs a value; " + usage);
      return argv[++i];
    };
    if (a == "--inputs") inputs.push_back(value());
    else if (a == "--output-dir") output_dir = value();
    else if (a == "--repeat") {
      std::string v = value();
      char* end = nullptr;
      repeat = std::strtol(v.c_str(), &end, 10);
      if (*end || repeat < 0) InputError("--repeat takes a non-negative integer, got " + v);
    } else if (a == "--duration") {
      std::string v = value();
      char* end = nullptr;
      duration = std::strtod(v.c_str(), &end);
      if (*end || !(duration >= 0)) InputError("--duration takes a non-negative number of seconds, got " + v);
    } else if (a == "--times") all_times = true;
    else if (a == "--devices") devices = true;
    else if (a == "--manifest") print_manifest = true;
    else if (a == "--root") root = value();
    else if (a == "--json") json = true;
    else if (a == "--random") random = true;
    else if (a == "--trust") trust.push_back(value());
    else if (a == "--allow-version-mismatch") allow_version_mismatch = true;
    else if (a == "--decrypt") decrypt = value();
    else if (a == "-h" || a == "--help") { std::puts(usage); return 0; }
    else if (!a.empty() && a[0] == '-') InputError("unknown option " + a + "; " + usage);
    else if (artifact.empty()) artifact = a;
    else InputError("unexpected argument " + a + "; " + usage);
  }
  if (devices) {
    std::printf("%s\n", DevicesSummary(root).c_str());
    return 0;
  }
  if (artifact.empty()) InputError(std::string("no artifact given; ") + usage);
  while (artifact.size() > 1 && artifact.back() == '/') artifact.pop_back();

  auto load_start = std::chrono::steady_clock::now();
  Manifest m = Manifest::Read(artifact);
  if (print_manifest) {  // the typed view only: no file is hashed, nothing is loaded
    std::printf("%s\n", m.ToJson().c_str());
    return 0;
  }
  std::string source = "--trust";
  if (trust.empty()) {
    const char* env = std::getenv("TVMEDGE_TRUSTED_KEYS");
    if (env && *env) trust.push_back(env), source = "TVMEDGE_TRUSTED_KEYS";
  }
  if (!trust.empty())  // authenticity first: nothing of an unsigned or forged artifact is looked at further
    VerifySignature(artifact, m.digest, ReadTrustedKeys(trust, source), m.signer);
  m.Verify();
  m.CheckArch();
  if (!allow_version_mismatch) CheckVersions(m);
  std::optional<SecretKey> secret;
  if (!m.encryption_key_id.empty()) {
    if (decrypt.empty()) {
      const char* env = std::getenv("TVMEDGE_DECRYPTION_KEY");
      if (env && *env) decrypt = env;
    }
    if (decrypt.empty())
      ArtifactError(artifact + " is encrypted (key " + m.encryption_key_id +
                    "); pass its key with --decrypt KEYFILE or TVMEDGE_DECRYPTION_KEY");
    secret = ReadSecretKey(decrypt);
    if (secret->Id() != m.encryption_key_id)
      ArtifactError(artifact + " is encrypted with key " + m.encryption_key_id + ", " + decrypt + " is key " +
                    secret->Id() + ": wrong key");
  }
  std::vector<Array> arrays = ReadInputs(m, inputs, random);
  Runner runner(m, secret);
  double load_s = Ms(load_start, std::chrono::steady_clock::now()) / 1e3;
  std::vector<Tensor> feed;
  for (const Array& a : arrays) feed.push_back(ToDevice(a));

  std::vector<Array> outputs;
  auto once = [&](bool keep) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<Tensor> result = runner.Run(feed);
    std::vector<Array> copied;
    for (const Tensor& t : result) copied.push_back(FromDevice(t));  // the time covers the copy out
    auto t1 = std::chrono::steady_clock::now();
    if (keep) outputs = std::move(copied);
    return Ms(t0, t1);
  };
  double first = once(true);
  std::vector<double> times;
  if (duration >= 0) {
    auto begin = std::chrono::steady_clock::now();
    while (Ms(begin, std::chrono::steady_clock::now()) < duration * 1e3) times.push_back(once(false));
  } else {
    for (long i = 0; i < repeat; ++i) times.push_back(once(false));
  }

  std::string stats = "{\"first_ms\": " + Num(first) + ", \"repeat\": " + std::to_string(times.size());
  if (!times.empty()) {
    std::vector<double> s = times;
    std::sort(s.begin(), s.end());
    double mean = 0, var = 0;
    for (double t : times) mean += t;
    mean /= times.size();
    for (double t : times) var += (t - mean) * (t - mean);
    size_t n = s.size();
    double median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    stats += ", \"mean_ms\": " + Num(mean) + ", \"median_ms\": " + Num(median) +
             ", \"p90_ms\": " + Num(s[std::min(n - 1, size_t(0.9 * n))]) + ", \"min_ms\": " + Num(s.front()) +
             ", \"max_ms\": " + Num(s.back()) + ", \"std_ms\": " + Num(std::sqrt(var / n));
  }
  stats += ", \"load_s\": " + Num(load_s) + ", \"loader\": \"c++\"";
  if (all_times) {
    stats += ", \"times_ms\": [";
    for (size_t i = 0; i < times.size(); ++i) stats += (i ? ", " : "") + Num(times[i]);
    stats += "]";
  }
  stats += "}";

  std::string described;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Array& a = outputs[i];
    if (!output_dir.empty()) WriteNpy(output_dir + "/output_" + std::to_string(i) + ".npy", a);
    std::string shape;
    for (size_t k = 0; k < a.shape.size(); ++k) shape += (k ? ", " : "") + std::to_string(a.shape[k]);
    std::string name;
    DumpString(m.outputs[i].name, &name);
    described += (i ? ", " : "") + name + ": {\"shape\": [" + shape + "], \"dtype\": \"" + a.dtype->name +
                 "\", \"file\": \"output_" + std::to_string(i) + ".npy\"}";
  }
  if (json) {
    std::printf("{\"stats\": %s, \"outputs\": {%s}}\n", stats.c_str(), described.c_str());
  } else {
    for (size_t i = 0; i < outputs.size(); ++i)
      std::printf("%s: shape %s %s\n", m.outputs[i].name.c_str(), ShapeText(outputs[i].shape).c_str(),
                  outputs[i].dtype->name);
    if (!times.empty()) {
      std::vector<double> s = times;
      std::sort(s.begin(), s.end());
      std::printf("latency: first %.3f ms, median %.3f ms over %zu runs\n", first, s[s.size() / 2], s.size());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const RunError& err) {
    std::fprintf(stderr, "Error: %s: %s\n", err.kind.c_str(), err.what());
  } catch (const ffi::Error& err) {
    std::fprintf(stderr, "Error: ArtifactError: %s: %s\n", std::string(err.kind()).c_str(),
                 std::string(err.message()).c_str());
  } catch (const std::exception& err) {
    std::fprintf(stderr, "Error: ArtifactError: %s\n", err.what());
  }
  return 1;
}
