/*
 * The artifact contract (tvmedge/runtime/manifest.py), read and checked as the Python loader checks it: format
 * and version, digest, every listed file's sha256, the architecture. The types mirror the Python ones field for
 * field where the loader uses them: TensorSpec, Stage, StoredPlan, BuildInfo, Manifest. A single-library artifact
 * (format version 1) is one stage from the model's inputs to its outputs, as Manifest.stages() reads it.
 * tests/runtime/test_runtime_manifest.py holds both readers to one golden manifest (tvmedge-run --manifest).
 */
#ifndef TVMEDGE_NATIVE_MANIFEST_H
#define TVMEDGE_NATIVE_MANIFEST_H

#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "arch.h"
#include "canonical_json.h"
#include "errors.h"
#include "sha256.h"

namespace tvmedge {

namespace ffi = tvm::ffi;

using JsonMap = ffi::Map<ffi::Any, ffi::Any>;

// Name, static shape and dtype of one tensor (manifest.py's TensorSpec).
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;
};

// One library and the tensors it reads and writes, by name, in call / return order (manifest.py's Stage).
struct Stage {
  int64_t index = 0;
  std::string library;
  std::vector<TensorSpec> inputs, outputs;
  std::optional<std::string> unit, built_for, fallback;
  std::vector<std::string> ops;
};

// The plan as the artifact stores it (manifest.py's StoredPlan): stages in order, the model's outputs by name.
struct StoredPlan {
  std::vector<Stage> stages;
  std::vector<std::string> outputs;
  std::optional<std::string> objective, algorithm;
};

// How the libraries were built (manifest.py's BuildInfo).
struct BuildInfo {
  int64_t opt_level = 3;
  std::optional<std::string> cross_compiler;
  std::string folding;
  std::optional<int64_t> partitions;
};

// --- reading JSON values -------------------------------------------------------------------------------------

inline std::string Malformed(const std::string& where, const std::string& key) {
  return where + " is missing or has a malformed field: '" + key + "'";
}

inline ffi::Any Get(const JsonMap& map, const char* key, const std::string& where) {
  auto it = map.find(ffi::String(key));
  if (it == map.end()) ArtifactError(Malformed(where, key));
  return (*it).second;
}

inline bool Has(const JsonMap& map, const char* key) {
  auto it = map.find(ffi::String(key));
  return it != map.end() && (*it).second.type_index() != ffi::TypeIndex::kTVMFFINone;
}

inline std::string GetString(const JsonMap& map, const char* key, const std::string& where) {
  auto s = Get(map, key, where).as<ffi::String>();
  if (!s) ArtifactError(Malformed(where, key));
  return std::string(*s);
}

// A string that may be absent or null.
inline std::optional<std::string> GetOptionalString(const JsonMap& map, const char* key, const std::string& where) {
  if (!Has(map, key)) return std::nullopt;
  return GetString(map, key, where);
}

inline std::vector<std::string> GetStrings(const JsonMap& map, const char* key, const std::string& where) {
  std::vector<std::string> out;
  auto arr = Get(map, key, where).as<ffi::Array<ffi::Any>>();
  if (!arr) ArtifactError(Malformed(where, key));
  for (const ffi::Any& item : *arr) {
    auto s = item.as<ffi::String>();
    if (!s) ArtifactError(Malformed(where, key));
    out.push_back(std::string(*s));
  }
  return out;
}

inline TensorSpec ReadSpec(const ffi::Any& item, const char* key, const std::string& where) {
  auto spec = item.as<JsonMap>();
  if (!spec) ArtifactError(Malformed(where, key));
  TensorSpec s{GetString(*spec, "name", where), {}, GetString(*spec, "dtype", where)};
  auto shape = Get(*spec, "shape", where).as<ffi::Array<ffi::Any>>();
  if (!shape) ArtifactError(Malformed(where, "shape"));
  for (const ffi::Any& d : *shape) {
    auto v = d.as<int64_t>();
    if (!v) ArtifactError(Malformed(where, "shape"));
    s.shape.push_back(*v);
  }
  return s;
}

inline std::vector<TensorSpec> ReadSpecs(const JsonMap& m, const char* key, const std::string& where) {
  std::vector<TensorSpec> specs;
  auto arr = Get(m, key, where).as<ffi::Array<ffi::Any>>();
  if (!arr) ArtifactError(Malformed(where, key));
  for (const ffi::Any& item : *arr) specs.push_back(ReadSpec(item, key, where));
  return specs;
}

inline Stage ReadStage(const ffi::Any& item, size_t position, const std::string& where) {
  auto st = item.as<JsonMap>();
  std::string here = where + ": stage " + std::to_string(position) + " of the plan";
  if (!st) ArtifactError(here + " is malformed");
  Stage s;
  auto index = Has(*st, "index") ? Get(*st, "index", here).as<int64_t>() : std::optional<int64_t>(0);
  if (!index) ArtifactError(Malformed(here, "index"));
  s.index = *index;
  s.library = GetString(*st, "library", here);
  s.inputs = ReadSpecs(*st, "inputs", here);
  s.outputs = ReadSpecs(*st, "outputs", here);
  s.unit = GetOptionalString(*st, "unit", here);
  s.built_for = GetOptionalString(*st, "built_for", here);
  s.fallback = GetOptionalString(*st, "fallback", here);
  if (Has(*st, "ops")) s.ops = GetStrings(*st, "ops", here);
  return s;
}

inline StoredPlan ReadPlan(const JsonMap& plan, const std::string& where) {
  StoredPlan p;
  auto stages = Get(plan, "stages", where).as<ffi::Array<ffi::Any>>();
  if (!stages) ArtifactError(Malformed(where, "plan.stages"));
  for (size_t i = 0; i < stages->size(); ++i) p.stages.push_back(ReadStage((*stages)[i], i, where));
  p.outputs = GetStrings(plan, "outputs", where);
  p.objective = GetOptionalString(plan, "objective", where);
  p.algorithm = GetOptionalString(plan, "algorithm", where);
  return p;
}

inline BuildInfo ReadBuild(const JsonMap& build, const std::string& where) {
  BuildInfo b;
  if (Has(build, "opt_level")) {
    auto level = Get(build, "opt_level", where).as<int64_t>();
    if (!level) ArtifactError(Malformed(where, "build.opt_level"));
    b.opt_level = *level;
  }
  b.cross_compiler = GetOptionalString(build, "cross_compiler", where);
  b.folding = GetOptionalString(build, "folding", where).value_or("");
  if (Has(build, "partitions")) {
    auto n = Get(build, "partitions", where).as<int64_t>();
    if (!n) ArtifactError(Malformed(where, "build.partitions"));
    b.partitions = *n;
  }
  return b;
}

// --- writing the typed view (tvmedge-run --manifest) ---------------------------------------------------------

inline ffi::Any OptionalString(const std::optional<std::string>& s) {
  return s ? ffi::Any(ffi::String(*s)) : ffi::Any(nullptr);
}

inline ffi::Array<ffi::Any> StringArray(const std::vector<std::string>& items) {
  ffi::Array<ffi::Any> out;
  for (const std::string& s : items) out.push_back(ffi::String(s));
  return out;
}

inline ffi::Array<ffi::Any> SpecArray(const std::vector<TensorSpec>& specs) {
  ffi::Array<ffi::Any> out;
  for (const TensorSpec& s : specs) {
    ffi::Array<ffi::Any> shape;
    for (int64_t d : s.shape) shape.push_back(d);
    JsonMap m;
    m.Set(ffi::String("name"), ffi::String(s.name));
    m.Set(ffi::String("shape"), shape);
    m.Set(ffi::String("dtype"), ffi::String(s.dtype));
    out.push_back(m);
  }
  return out;
}

// --- the manifest --------------------------------------------------------------------------------------------

struct Manifest {
  std::string dir, board, arch, triple, library;
  std::string digest, tvm_version, tvm_ffi_version;  // what a signature signs; the versions the loader pins
  std::optional<std::string> signer;  // provenance.key_id: who signed it (none for unsigned artifacts)
  std::string encryption_key_id;  // encrypted at rest (ChaCha20-Poly1305) with this key, "" when not encrypted
  std::vector<std::string> encrypted;  // the encrypted libraries
  int64_t format_version = 1;
  std::vector<TensorSpec> inputs, outputs;
  BuildInfo build;
  std::optional<StoredPlan> plan;  // a partitioned artifact's (format version 2)
  std::map<std::string, std::string> files;  // file name -> sha256

  // The stages the loader runs, in order: the plan's, or the one library from the model's inputs to its outputs.
  std::vector<Stage> Stages() const {
    if (plan) return plan->stages;
    Stage single;
    single.library = library;
    single.inputs = inputs;
    single.outputs = outputs;
    return {single};
  }

  // Which stage tensors are the model's outputs, in the model's order.
  std::vector<std::string> OutputNames() const {
    if (plan) return plan->outputs;
    std::vector<std::string> names;
    for (const TensorSpec& s : outputs) names.push_back(s.name);
    return names;
  }

  // Parse and check dir/manifest.json (format, digest, version, fields); nothing else is read yet.
  static Manifest Read(const std::string& dir) {
    std::string where = dir + "/manifest.json";
    std::optional<std::string> read = ReadFile(where);
    if (!read) ArtifactError(dir + " has no manifest.json; it is not a tvmedge artifact");
    ffi::String error;
    ffi::Any parsed = ffi::json::Parse(*read, &error);
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

    // An LM artifact's prefill/decode library takes its weights as parameters from the LM folder's
    // weights.safetensors (tvmedge/runtime/weights.py); this loader runs single artifacts only.
    if (Has(*data, "weights"))
      ArtifactError(dir + " keeps its weights outside the library (a graph of an LM artifact); tvmedge-run loads "
                    "single artifacts only: generate with `python -m tvmedge.runtime.lm` or `tvmedge generate`");

    Manifest m;
    m.dir = dir;
    m.format_version = *version;
    m.digest = std::string((*digest).second.as<ffi::String>().value_or(""));
    m.tvm_version = GetOptionalString(*data, "tvm_version", where).value_or("");
    m.tvm_ffi_version = GetOptionalString(*data, "tvm_ffi_version", where).value_or("");
    if (Has(*data, "provenance")) {
      auto provenance = Get(*data, "provenance", where).as<JsonMap>();
      if (provenance) m.signer = GetOptionalString(*provenance, "key_id", where);
    }
    if (Has(*data, "encryption")) {
      auto encryption = Get(*data, "encryption", where).as<JsonMap>();
      if (!encryption) ArtifactError(Malformed(where, "encryption"));
      m.encryption_key_id = GetString(*encryption, "key_id", where);
      m.encrypted = GetStrings(*encryption, "files", where);
    }
    m.board = GetString(*data, "board", where);
    m.arch = GetString(*data, "arch", where);
    m.triple = GetString(*data, "triple", where);
    m.inputs = ReadSpecs(*data, "inputs", where);
    m.outputs = ReadSpecs(*data, "outputs", where);
    m.library = GetString(*data, "library", where);
    if (Has(*data, "build")) {
      auto build = Get(*data, "build", where).as<JsonMap>();
      if (!build) ArtifactError(Malformed(where, "build"));
      m.build = ReadBuild(*build, where);
    }
    // a plan without stages (written before partitioned artifacts existed) describes no libraries
    auto plan = Has(*data, "plan") ? Get(*data, "plan", where).as<JsonMap>() : std::nullopt;
    if (plan) {
      auto stages = plan->find(ffi::String("stages"));
      auto list = stages == plan->end() ? std::nullopt : (*stages).second.as<ffi::Array<ffi::Any>>();
      if (list && list->size() > 0) m.plan = ReadPlan(*plan, where);
    }
    auto files = Get(*data, "files", where).as<JsonMap>();
    if (!files) ArtifactError(Malformed(where, "files"));
    for (auto kv : *files) {
      auto info = kv.second.as<JsonMap>();
      m.files[std::string(kv.first.cast<ffi::String>())] = info ? GetString(*info, "sha256", where) : "";
    }
    return m;
  }

  // Every library listed, every listed file's sha256 as recorded: before any native code of the artifact loads.
  void Verify() const {
    std::string where = dir + "/manifest.json";
    std::vector<std::string> libraries = {library};
    for (const Stage& st : Stages()) libraries.push_back(st.library);
    for (const std::string& name : libraries)
      if (files.find(name) == files.end()) ArtifactError(where + " does not list a hash for its library " + name);
    for (const auto& [name, expected] : files) {  // std::map: sorted, as the Python loader checks them
      if (name.empty() || name[0] == '/' || name.find("..") != std::string::npos)
        ArtifactError(where + " names a file outside the artifact: " + name);
      std::string path = dir + "/" + name;
      std::optional<std::string> bytes = ReadFile(path);
      if (!bytes) ArtifactError(path + " is missing from the artifact");
      if (Sha256Hex(*bytes) != expected)
        ArtifactError(path + " does not match the sha256 in its manifest (tampered or corrupt); refusing to load it");
    }
  }

  void CheckArch() const {
    std::string here = MachineArch();
    if (arch != here) ArtifactError(dir + " is built for " + arch + " (board " + board + "); this machine is " + here);
  }

  // The typed view as one JSON object: what both readers read from the same file (the golden-manifest test).
  std::string ToJson() const {
    ffi::Array<ffi::Any> stages;
    for (const Stage& st : Stages()) {
      JsonMap s;
      s.Set(ffi::String("index"), st.index);
      s.Set(ffi::String("library"), ffi::String(st.library));
      s.Set(ffi::String("inputs"), SpecArray(st.inputs));
      s.Set(ffi::String("outputs"), SpecArray(st.outputs));
      s.Set(ffi::String("unit"), OptionalString(st.unit));
      s.Set(ffi::String("built_for"), OptionalString(st.built_for));
      s.Set(ffi::String("fallback"), OptionalString(st.fallback));
      s.Set(ffi::String("ops"), StringArray(st.ops));
      stages.push_back(s);
    }
    JsonMap b;
    b.Set(ffi::String("opt_level"), build.opt_level);
    b.Set(ffi::String("cross_compiler"), OptionalString(build.cross_compiler));
    b.Set(ffi::String("folding"), ffi::String(build.folding));
    b.Set(ffi::String("partitions"), build.partitions ? ffi::Any(*build.partitions) : ffi::Any(nullptr));
    JsonMap m;
    m.Set(ffi::String("format_version"), format_version);
    m.Set(ffi::String("board"), ffi::String(board));
    m.Set(ffi::String("arch"), ffi::String(arch));
    m.Set(ffi::String("triple"), ffi::String(triple));
    m.Set(ffi::String("library"), ffi::String(library));
    m.Set(ffi::String("inputs"), SpecArray(inputs));
    m.Set(ffi::String("outputs"), SpecArray(outputs));
    m.Set(ffi::String("build"), b);
    m.Set(ffi::String("stages"), stages);
    m.Set(ffi::String("output_names"), StringArray(OutputNames()));
    m.Set(ffi::String("objective"), plan ? OptionalString(plan->objective) : ffi::Any(nullptr));
    m.Set(ffi::String("algorithm"), plan ? OptionalString(plan->algorithm) : ffi::Any(nullptr));
    std::string out;
    DumpJson(m, &out);
    return out;
  }
};

}  // namespace tvmedge

#endif  // TVMEDGE_NATIVE_MANIFEST_H
