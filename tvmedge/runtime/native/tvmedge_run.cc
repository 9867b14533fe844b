/*
 * tvmedge-run: the C++ loader of tvmedge artifacts, for boards without Python (RISC-V boards, small images).
 *
 * It reads the same manifest.json as the Python loader (tvmedge/runtime/manifest.py) and refuses what it
 * refuses: another format or version, a manifest edited after the build (its digest), a file whose sha256
 * differs, an artifact for another architecture, inputs of the wrong name, shape or dtype. It needs nothing
 * but TVM's runtime (libtvm_runtime.so + libtvm_ffi.so) and the C++ standard library.
 *
 *   tvmedge-run ARTIFACT [--inputs NAME=file.npy ...] [--random] [--output-dir DIR] [--repeat N] [--json]
 *               [--duration SECONDS] [--times]
 *
 * --duration runs back to back for that long after the first run (instead of --repeat runs); --times adds
 * every run's latency to the report (what `tvmedge certify` summarises).
 *
 * Inputs and outputs are .npy files (outputs: DIR/output_<i>.npy, in the manifest's order). With --json the
 * last stdout line is the same {"stats": {...}, "outputs": {...}} object the Python runtime prints. Errors are
 * one line on stderr, "Error: <ArtifactError|InputError>: message", and exit code 1.
 *
 * Written here rather than reused: the Python loader cannot run where there is no Python, and TVM ships no
 * manifest-aware C++ runner (its C++ RPC app runs modules, not artifacts). SHA-256 is implemented below
 * because the cross toolchain's sysroot has no crypto library (FIPS 180-4, checked against hashlib in tests).
 */
#include <dlpack/dlpack.h>
#include <sys/utsname.h>
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>
#include <tvm/runtime/tensor.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ffi = tvm::ffi;
using tvm::runtime::Tensor;

namespace {

// ------------------------------------------------------------------------------------------------------------
// errors: the class name travels to the host (tvmedge/devices/emulator maps it back to the Python class)

struct RunError : std::runtime_error {
  std::string kind;
  RunError(std::string kind, const std::string& message) : std::runtime_error(message), kind(std::move(kind)) {}
};
[[noreturn]] void ArtifactError(const std::string& m) { throw RunError("ArtifactError", m); }
[[noreturn]] void InputError(const std::string& m) { throw RunError("InputError", m); }

// ------------------------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4)

class Sha256 {
 public:
  void Update(const uint8_t* data, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      block_[used_++] = data[i];
      if (used_ == 64) { Compress(); used_ = 0; }
    }
    bits_ += uint64_t(n) * 8;
  }
  std::string HexDigest() {
    uint64_t bits = bits_;
    uint8_t pad = 0x80;
    Update(&pad, 1);
    uint8_t zero = 0;
    while (used_ != 56) Update(&zero, 1);
    for (int i = 7; i >= 0; --i) block_[used_++] = uint8_t(bits >> (8 * i));
    Compress();
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (uint32_t word : h_)
      for (int i = 28; i >= 0; i -= 4) out += hex[(word >> i) & 0xf];
    return out;
  }

 private:
  static uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void Compress() {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(block_[4 * i]) << 24 | uint32_t(block_[4 * i + 1]) << 16 | uint32_t(block_[4 * i + 2]) << 8 |
             uint32_t(block_[4 * i + 3]);
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t t1 = h + (Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      uint32_t t2 = (Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    uint32_t add[8] = {a, b, c, d, e, f, g, h};
    for (int i = 0; i < 8; ++i) h_[i] += add[i];
  }
  std::array<uint32_t, 8> h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint8_t block_[64];
  size_t used_ = 0;
  uint64_t bits_ = 0;
};

std::string Sha256Hex(const std::string& bytes) {
  Sha256 h;
  h.Update(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return h.HexDigest();
}

std::string ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (std::string(what) == "input") InputError("input file " + path + " does not exist");
    ArtifactError(path + " is missing from the artifact");
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// ------------------------------------------------------------------------------------------------------------
// the manifest's digest: sha256 of Python's json.dumps(body, sort_keys=True) (manifest.py), reproduced exactly

void DumpString(const std::string& s, std::string* out) {
  // ensure_ascii: non-ASCII as \uXXXX (UTF-16, surrogate pairs above the BMP)
  static const char* hex = "0123456789abcdef";
  auto u16 = [&](uint32_t c) {
    *out += "\\u";
    for (int i = 12; i >= 0; i -= 4) *out += hex[(c >> i) & 0xf];
  };
  *out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    uint32_t cp = c;
    size_t len = 1;
    if (c >= 0xf0) { cp = c & 0x07; len = 4; } else if (c >= 0xe0) { cp = c & 0x0f; len = 3; }
    else if (c >= 0xc0) { cp = c & 0x1f; len = 2; }
    for (size_t j = 1; j < len && i + j < s.size(); ++j) cp = (cp << 6) | (s[i + j] & 0x3f);
    i += len;
    switch (cp) {
      case '"': *out += "\\\""; continue;
      case '\\': *out += "\\\\"; continue;
      case '\n': *out += "\\n"; continue;
      case '\r': *out += "\\r"; continue;
      case '\t': *out += "\\t"; continue;
      case '\b': *out += "\\b"; continue;
      case '\f': *out += "\\f"; continue;
    }
    if (cp < 0x20 || cp > 0x7e) {
      if (cp >= 0x10000) {
        cp -= 0x10000;
        u16(0xd800 | (cp >> 10));
        u16(0xdc00 | (cp & 0x3ff));
      } else {
        u16(cp);
      }
    } else {
      *out += char(cp);
    }
  }
  *out += '"';
}

void DumpFloat(double v, std::string* out) {
  // Python's float repr: shortest round-trip digits; fixed notation for 1e-4 <= |v| < 1e16, else d.ddde+XX
  if (std::isnan(v)) { *out += "NaN"; return; }
  if (std::isinf(v)) { *out += v > 0 ? "Infinity" : "-Infinity"; return; }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.2345e-05"
  size_t epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  int exp = std::stoi(sci.substr(epos + 1));
  bool neg = mant[0] == '-';
  if (neg) mant = mant.substr(1);
  std::string digits;
  for (char ch : mant) if (ch != '.') digits += ch;
  std::string text;
  if (exp >= -4 && exp < 16) {  // repr uses the exponent form below 1e-4 and from 1e16 on
    if (exp < 0) {
      text = "0." + std::string(-exp - 1, '0') + digits;
    } else if (int(digits.size()) <= exp + 1) {
      text = digits + std::string(exp + 1 - digits.size(), '0') + ".0";
    } else {
      text = digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
    }
  }
  if (text.empty()) {
    text = digits.substr(0, 1);
    if (digits.size() > 1) text += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof(e), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    text += e;
  }
  *out += (neg ? "-" : "") + text;
}

void DumpJson(const ffi::Any& value, std::string* out) {
  if (value.type_index() == ffi::TypeIndex::kTVMFFINone) { *out += "null"; return; }
  if (auto b = value.as<bool>()) { *out += *b ? "true" : "false"; return; }
  if (auto i = value.as<int64_t>()) { *out += std::to_string(*i); return; }
  if (auto d = value.as<double>()) { DumpFloat(*d, out); return; }
  if (auto s = value.as<ffi::String>()) { DumpString(std::string(*s), out); return; }
  if (auto arr = value.as<ffi::Array<ffi::Any>>()) {
    *out += "[";
    for (size_t i = 0; i < arr->size(); ++i) {
      if (i) *out += ", ";
      DumpJson((*arr)[i], out);
    }
    *out += "]";
    return;
  }
  if (auto map = value.as<ffi::Map<ffi::Any, ffi::Any>>()) {
    std::vector<std::pair<std::string, ffi::Any>> items;
    for (auto kv : *map) items.emplace_back(std::string(kv.first.cast<ffi::String>()), kv.second);
    std::sort(items.begin(), items.end(), [](auto& x, auto& y) { return x.first < y.first; });
    *out += "{";
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) *out += ", ";
      DumpString(items[i].first, out);
      *out += ": ";
      DumpJson(items[i].second, out);
    }
    *out += "}";
    return;
  }
  ArtifactError("manifest.json holds a value this loader cannot read");
}

// ------------------------------------------------------------------------------------------------------------
// manifest

struct Spec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;
};

struct Stage {
  std::string library;
  std::vector<std::string> inputs, outputs;
};

using JsonMap = ffi::Map<ffi::Any, ffi::Any>;

ffi::Any Get(const JsonMap& map, const char* key, const std::string& where) {
  auto it = map.find(ffi::String(key));
  if (it == map.end()) ArtifactError(where + " is missing or has a malformed field: '" + key + "'");
  return (*it).second;
}

std::string GetString(const JsonMap& map, const char* key, const std::string& where) {
  auto s = Get(map, key, where).as<ffi::String>();
  if (!s) ArtifactError(where + " is missing or has a malformed field: '" + key + "'");
  return std::string(*s);
}

std::vector<Spec> ReadSpecs(const JsonMap& m, const char* key, const std::string& where) {
  std::vector<Spec> specs;
  auto arr = Get(m, key, where).as<ffi::Array<ffi::Any>>();
  if (!arr) ArtifactError(where + " is missing or has a malformed field: '" + key + "'");
  for (const ffi::Any& item : *arr) {
    auto spec = item.as<JsonMap>();
    if (!spec) ArtifactError(where + " is missing or has a malformed field: '" + key + "'");
    Spec s{GetString(*spec, "name", where), {}, GetString(*spec, "dtype", where)};
    auto shape = Get(*spec, "shape", where).as<ffi::Array<ffi::Any>>();
    if (!shape) ArtifactError(where + " is missing or has a malformed field: 'shape'");
    for (const ffi::Any& d : *shape) {
      auto v = d.as<int64_t>();
      if (!v) ArtifactError(where + " is missing or has a malformed field: 'shape'");
      s.shape.push_back(*v);
    }
    specs.push_back(std::move(s));
  }
  return specs;
}

std::vector<std::string> Names(const ffi::Any& value, const std::string& where) {
  std::vector<std::string> names;
  auto arr = value.as<ffi::Array<ffi::Any>>();
  if (!arr) ArtifactError(where + ": the plan is malformed");
  for (const ffi::Any& item : *arr) {
    if (auto spec = item.as<JsonMap>()) names.push_back(GetString(*spec, "name", where));
    else if (auto s = item.as<ffi::String>()) names.push_back(std::string(*s));
    else ArtifactError(where + ": the plan is malformed");
  }
  return names;
}

std::string MachineArch() {
  struct utsname u;
  uname(&u);
  std::string m = u.machine;
  if (m == "arm64") return "aarch64";
  if (m == "amd64") return "x86_64";
  return m;
}

struct Manifest {
  std::string dir, board, arch;
  std::vector<Spec> inputs, outputs;
  std::vector<Stage> stages;  // one per library; a single-library artifact is one stage from inputs to outputs
  std::vector<std::string> plan_outputs;

  static Manifest Read(const std::string& dir) {
    std::string where = dir + "/manifest.json";
    std::ifstream probe(where);
    if (!probe) ArtifactError(dir + " has no manifest.json; it is not a tvmedge artifact");
    std::string text = ReadFile(where, "manifest");
    ffi::String error;
    ffi::Any parsed = ffi::json::Parse(text, &error);
    if (!error.empty()) ArtifactError(where + " is not valid JSON (corrupt or edited): " + std::string(error));
    auto data = parsed.as<JsonMap>();
    if (!data || data->find(ffi::String("format")) == data->end() ||
        Get(*data, "format", where).as<ffi::String>().value_or("") != "tvmedge-artifact")
      ArtifactError(where + " is not a tvmedge-artifact manifest");
    // digest: every field but "created" and "digest", as Python's json.dumps(sort_keys=True) writes it
    JsonMap body;
    for (auto kv : *data) {
      std::string key = std::string(kv.first.cast<ffi::String>());
      if (key != "created" && key != "digest") body.Set(kv.first, kv.second);
    }
    std::string canonical;
    DumpJson(body, &canonical);
    auto digest = data->find(ffi::String("digest"));
    if (digest == data->end() || (*digest).second.as<ffi::String>().value_or("") != Sha256Hex(canonical))
      ArtifactError(where + " was modified after it was built (its digest does not match); rebuild the artifact");
    auto version = Get(*data, "format_version", where).as<int64_t>();
    if (!version || (*version != 1 && *version != 2))
      ArtifactError(where + " has format version " + (version ? std::to_string(*version) : "?") +
                    "; this runtime reads versions 1, 2");

    Manifest m;
    m.dir = dir;
    m.board = GetString(*data, "board", where);
    m.arch = GetString(*data, "arch", where);
    m.inputs = ReadSpecs(*data, "inputs", where);
    m.outputs = ReadSpecs(*data, "outputs", where);
    std::string library = GetString(*data, "library", where);

    auto files = Get(*data, "files", where).as<JsonMap>();
    if (!files) ArtifactError(where + " is missing or has a malformed field: 'files'");
    auto plan = data->find(ffi::String("plan"));
    auto plan_map = plan == data->end() ? std::nullopt : (*plan).second.as<JsonMap>();
    if (plan_map && plan_map->find(ffi::String("stages")) != plan_map->end()) {
      auto stages = Get(*plan_map, "stages", where).as<ffi::Array<ffi::Any>>();
      if (stages && stages->size() > 0) {
        for (const ffi::Any& item : *stages) {
          auto st = item.as<JsonMap>();
          if (!st) ArtifactError(where + ": the plan is malformed");
          m.stages.push_back({GetString(*st, "library", where), Names(Get(*st, "inputs", where), where),
                              Names(Get(*st, "outputs", where), where)});
        }
        m.plan_outputs = Names(Get(*plan_map, "outputs", where), where);
      }
    }
    if (m.stages.empty()) {
      Stage single{library, {}, {}};
      for (auto& s : m.inputs) single.inputs.push_back(s.name);
      for (auto& s : m.outputs) single.outputs.push_back(s.name);
      m.stages.push_back(single);
      m.plan_outputs = single.outputs;
    }
    for (const Stage& st : m.stages)
      if (files->find(ffi::String(st.library)) == files->end())
        ArtifactError(where + " does not list a hash for its library " + st.library);
    // every listed file's sha256, before any native code of the artifact is loaded
    std::vector<std::string> names;
    for (auto kv : *files) names.push_back(std::string(kv.first.cast<ffi::String>()));
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      if (name.empty() || name[0] == '/' || name.find("..") != std::string::npos)
        ArtifactError(where + " names a file outside the artifact: " + name);
      auto info = (*files)[ffi::String(name)].as<JsonMap>();
      std::string expected = info ? GetString(*info, "sha256", where) : "";
      std::string path = dir + "/" + name;
      if (Sha256Hex(ReadFile(path, "artifact")) != expected)
        ArtifactError(path + " does not match the sha256 in its manifest (tampered or corrupt); refusing to load it");
    }
    std::string here = MachineArch();
    if (m.arch != here)
      ArtifactError(dir + " is built for " + m.arch + " (board " + m.board + "); this machine is " + here);
    return m;
  }
};

// ------------------------------------------------------------------------------------------------------------
// .npy files

struct DType {
  const char* name;
  const char* descr;  // numpy's little-endian descr
  DLDataType dl;
};
const DType kDTypes[] = {
    {"float32", "<f4", {kDLFloat, 32, 1}}, {"float64", "<f8", {kDLFloat, 64, 1}},
    {"float16", "<f2", {kDLFloat, 16, 1}}, {"int8", "|i1", {kDLInt, 8, 1}},
    {"int16", "<i2", {kDLInt, 16, 1}},     {"int32", "<i4", {kDLInt, 32, 1}},
    {"int64", "<i8", {kDLInt, 64, 1}},     {"uint8", "|u1", {kDLUInt, 8, 1}},
    {"uint16", "<u2", {kDLUInt, 16, 1}},   {"uint32", "<u4", {kDLUInt, 32, 1}},
    {"uint64", "<u8", {kDLUInt, 64, 1}},   {"bool", "|b1", {kDLBool, 8, 1}},
};

const DType* ByName(const std::string& name) {
  for (const DType& d : kDTypes) if (name == d.name) return &d;
  return nullptr;
}
const DType* ByDescr(const std::string& descr) {
  for (const DType& d : kDTypes) {
    std::string alt = d.descr;
    if (descr == alt || (alt[0] != '|' && descr == "=" + alt.substr(1))) return &d;
  }
  return nullptr;
}
const DType* ByDL(DLDataType t) {
  for (const DType& d : kDTypes)
    if (d.dl.code == t.code && d.dl.bits == t.bits && d.dl.lanes == t.lanes) return &d;
  return nullptr;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

struct Array {
  std::vector<int64_t> shape;
  const DType* dtype = nullptr;
  std::string data;
};

Array ReadNpy(const std::string& path) {
  std::string raw = ReadFile(path, "input");
  auto bad = [&](const std::string& why) { InputError(path + " is not a readable .npy file: " + why); };
  if (raw.size() < 10 || raw.compare(0, 6, "\x93NUMPY") != 0) bad("no .npy magic");
  int major = uint8_t(raw[6]);
  size_t header_len, start;
  if (major == 1) {
    header_len = uint8_t(raw[8]) | uint8_t(raw[9]) << 8;
    start = 10;
  } else {
    if (raw.size() < 12) bad("truncated header");
    header_len = uint32_t(uint8_t(raw[8])) | uint32_t(uint8_t(raw[9])) << 8 | uint32_t(uint8_t(raw[10])) << 16 |
                 uint32_t(uint8_t(raw[11])) << 24;
    start = 12;
  }
  if (raw.size() < start + header_len) bad("truncated header");
  std::string header = raw.substr(start, header_len);
  auto field = [&](const char* key) {
    size_t k = header.find(std::string("'") + key + "'");
    if (k == std::string::npos) bad(std::string("header has no ") + key);
    return header.substr(header.find(':', k) + 1);
  };
  std::string descr = field("descr");
  descr = descr.substr(descr.find('\'') + 1);
  descr = descr.substr(0, descr.find('\''));
  if (field("fortran_order").find("True") < field("fortran_order").find(',')) bad("Fortran order is not supported");
  Array a;
  a.dtype = ByDescr(descr);
  if (!a.dtype) bad("dtype " + descr + " is not supported");
  std::string shape = field("shape");
  shape = shape.substr(shape.find('(') + 1, shape.find(')') - shape.find('(') - 1);
  std::stringstream ss(shape);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    a.shape.push_back(std::stoll(item));
  }
  size_t count = 1;
  for (int64_t d : a.shape) count *= size_t(d);
  size_t nbytes = count * ((a.dtype->dl.bits + 7) / 8);
  if (raw.size() - start - header_len != nbytes)
    bad("holds " + std::to_string(raw.size() - start - header_len) + " data bytes, its header says " +
        std::to_string(nbytes));
  a.data = raw.substr(start + header_len);
  return a;
}

void WriteNpy(const std::string& path, const Array& a) {
  std::string header = std::string("{'descr': '") + a.dtype->descr + "', 'fortran_order': False, 'shape': " +
                       ShapeText(a.shape) + ", }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::ofstream out(path, std::ios::binary);
  if (!out) throw RunError("InputError", "cannot write " + path);
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t len = uint16_t(header.size());
  char l[2] = {char(len & 0xff), char(len >> 8)};
  out.write(l, 2);
  out << header;
  out.write(a.data.data(), std::streamsize(a.data.size()));
}

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
  std::vector<Loaded> loaded;

  explicit Runner(const Manifest& manifest) : m(manifest) {
    for (const Stage& st : m.stages) {
      std::string path = m.dir + "/" + st.library;
      try {
        ffi::Module library = ffi::Module::LoadFromFile(path);
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
    for (size_t s = 0; s < m.stages.size(); ++s) {
      const Stage& st = m.stages[s];
      std::vector<ffi::AnyView> args;
      for (const std::string& name : st.inputs) {
        auto it = tensors.find(name);
        if (it == tensors.end()) ArtifactError(m.dir + ": stage " + std::to_string(s) + " reads '" + name +
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
      for (size_t i = 0; i < values.size(); ++i) tensors[st.outputs[i]] = values[i];
    }
    std::vector<Tensor> outputs;
    for (const std::string& name : m.plan_outputs) outputs.push_back(tensors.at(name));
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
    for (const Spec& s : m.inputs) known = known || s.name == item.first;
    if (!known) {
      std::string names;
      for (const Spec& s : m.inputs) names += (names.empty() ? "" : ", ") + s.name;
      InputError("unknown input '" + item.first + "'; the model's inputs are: " + names);
    }
  }
  std::vector<Array> arrays;
  std::mt19937_64 rng(0);
  for (const Spec& spec : m.inputs) {
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

int Main(int argc, char** argv) {
  std::string artifact, output_dir;
  std::vector<std::string> inputs;
  bool json = false, random = false, all_times = false;
  long repeat = 1;
  double duration = -1;
  const char* usage =
      "usage: tvmedge-run ARTIFACT [--inputs NAME=file.npy ...] [--random] [--output-dir DIR] [--repeat N] "
      "[--duration SECONDS] [--times] [--json]";
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
    else if (a == "--json") json = true;
    else if (a == "--random") random = true;
    else if (a == "-h" || a == "--help") { std::puts(usage); return 0; }
    else if (!a.empty() && a[0] == '-') InputError("unknown option " + a + "; " + usage);
    else if (artifact.empty()) artifact = a;
    else InputError("unexpected argument " + a + "; " + usage);
  }
  if (artifact.empty()) InputError(std::string("no artifact given; ") + usage);
  while (artifact.size() > 1 && artifact.back() == '/') artifact.pop_back();

  auto load_start = std::chrono::steady_clock::now();
  Manifest m = Manifest::Read(artifact);
  std::vector<Array> arrays = ReadInputs(m, inputs, random);
  Runner runner(m);
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
