/*
 * The artifact manifest (tvmedge/runtime/manifest.py), read and checked as the Python loader checks it:
 * format and version, digest, every listed file's sha256, the architecture.
 */
#ifndef TVMEDGE_NATIVE_MANIFEST_H
#define TVMEDGE_NATIVE_MANIFEST_H

#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "arch.h"
#include "canonical_json.h"
#include "errors.h"
#include "sha256.h"

namespace tvmedge {

namespace ffi = tvm::ffi;

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

inline ffi::Any Get(const JsonMap& map, const char* key, const std::string& where) {
  auto it = map.find(ffi::String(key));
  if (it == map.end()) ArtifactError(where + " is missing or has a malformed field: '" + key + "'");
  return (*it).second;
}

inline std::string GetString(const JsonMap& map, const char* key, const std::string& where) {
  auto s = Get(map, key, where).as<ffi::String>();
  if (!s) ArtifactError(where + " is missing or has a malformed field: '" + key + "'");
  return std::string(*s);
}

inline std::vector<Spec> ReadSpecs(const JsonMap& m, const char* key, const std::string& where) {
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

inline std::vector<std::string> Names(const ffi::Any& value, const std::string& where) {
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

struct Manifest {
  std::string dir, board, arch;
  std::vector<Spec> inputs, outputs;
  std::vector<Stage> stages;  // one per library; a single-library artifact is one stage from inputs to outputs
  std::vector<std::string> plan_outputs;

  static Manifest Read(const std::string& dir) {
    std::string where = dir + "/manifest.json";
    std::optional<std::string> read = ReadFile(where);
    if (!read) ArtifactError(dir + " has no manifest.json; it is not a tvmedge artifact");
    std::string text = *read;
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
      std::optional<std::string> bytes = ReadFile(path);
      if (!bytes) ArtifactError(path + " is missing from the artifact");
      if (Sha256Hex(*bytes) != expected)
        ArtifactError(path + " does not match the sha256 in its manifest (tampered or corrupt); refusing to load it");
    }
    std::string here = MachineArch();
    if (m.arch != here)
      ArtifactError(dir + " is built for " + m.arch + " (board " + m.board + "); this machine is " + here);
    return m;
  }
};

}  // namespace tvmedge

#endif  // TVMEDGE_NATIVE_MANIFEST_H
