/*
 * Python's json.dumps(value, sort_keys=True) reproduced for tvm-ffi JSON values: the manifest digest
 * (tvmedge/runtime/manifest.py) is the sha256 of that text, so the C++ loader recomputes it byte for byte
 * (ensure_ascii escapes, float repr, ", " and ": " separators).
 */
#ifndef TVMEDGE_NATIVE_CANONICAL_JSON_H
#define TVMEDGE_NATIVE_CANONICAL_JSON_H

#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "errors.h"

namespace tvmedge {

namespace ffi = tvm::ffi;

inline void DumpString(const std::string& s, std::string* out) {
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

inline void DumpFloat(double v, std::string* out) {
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

inline void DumpJson(const ffi::Any& value, std::string* out) {
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

}  // namespace tvmedge

#endif  // TVMEDGE_NATIVE_CANONICAL_JSON_H
