/*
 * NumPy .npy files (format versions 1-3, little-endian, C order): the C++ loader's inputs and outputs.
 */
#ifndef TVMEDGE_NATIVE_NPY_H
#define TVMEDGE_NATIVE_NPY_H

#include <dlpack/dlpack.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "errors.h"

namespace tvmedge {

struct DType {
  const char* name;
  const char* descr;  // numpy's little-endian descr
  DLDataType dl;
};
inline const DType kDTypes[] = {
    {"float32", "<f4", {kDLFloat, 32, 1}}, {"float64", "<f8", {kDLFloat, 64, 1}},
    {"float16", "<f2", {kDLFloat, 16, 1}}, {"int8", "|i1", {kDLInt, 8, 1}},
    {"int16", "<i2", {kDLInt, 16, 1}},     {"int32", "<i4", {kDLInt, 32, 1}},
    {"int64", "<i8", {kDLInt, 64, 1}},     {"uint8", "|u1", {kDLUInt, 8, 1}},
    {"uint16", "<u2", {kDLUInt, 16, 1}},   {"uint32", "<u4", {kDLUInt, 32, 1}},
    {"uint64", "<u8", {kDLUInt, 64, 1}},   {"bool", "|b1", {kDLBool, 8, 1}},
};

inline const DType* ByName(const std::string& name) {
  for (const DType& d : kDTypes) if (name == d.name) return &d;
  return nullptr;
}
inline const DType* ByDescr(const std::string& descr) {
  for (const DType& d : kDTypes) {
    std::string alt = d.descr;
    if (descr == alt || (alt[0] != '|' && descr == "=" + alt.substr(1))) return &d;
  }
  return nullptr;
}
inline const DType* ByDL(DLDataType t) {
  for (const DType& d : kDTypes)
    if (d.dl.code == t.code && d.dl.bits == t.bits && d.dl.lanes == t.lanes) return &d;
  return nullptr;
}

inline std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

struct Array {
  std::vector<int64_t> shape;
  const DType* dtype = nullptr;
  std::string data;
};

inline Array ReadNpy(const std::string& path) {
  std::optional<std::string> read = ReadFile(path);
  if (!read) InputError("input file " + path + " does not exist");
  const std::string& raw = *read;
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

inline void WriteNpy(const std::string& path, const Array& a) {
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

}  // namespace tvmedge

#endif  // TVMEDGE_NATIVE_NPY_H
