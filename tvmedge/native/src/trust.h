/*
 * Signed artifacts on the board (tvmedge-run --trust / TVMEDGE_TRUSTED_KEYS): the C++ twin of
 * tvmedge/runtime/trust.py. manifest.sig holds an Ed25519 signature over "tvmedge-artifact-signature-v1:" +
 * the manifest's digest; the digest covers every field and every library's sha256. Checked before any library
 * is opened, with the same one-line refusals as the Python loader. The Ed25519 check is Monocypher's
 * (third_party/monocypher, compiled with the loader); only PEM/base64 unwrapping is written here.
 */
#ifndef TVMEDGE_NATIVE_TRUST_H
#define TVMEDGE_NATIVE_TRUST_H

#include <dirent.h>
#include <sys/stat.h>
#include <tvm/ffi/extra/json.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "errors.h"
#include "manifest.h"
#include "sha256.h"

extern "C" {
#include "monocypher-ed25519.h"
#include "monocypher.h"
}

namespace tvmedge {

[[noreturn]] inline void ConfigError(const std::string& m) { throw RunError("ConfigError", m); }

// Standard base64 (RFC 4648) with padding; nullopt for anything else.
inline std::optional<std::string> Base64Decode(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string clean;
  for (char c : text)
    if (c != '\n' && c != '\r' && c != ' ') clean += c;
  if (clean.size() % 4) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < clean.size(); i += 4) {
    int v[4];
    for (int k = 0; k < 4; ++k) {
      char c = clean[i + k];
      v[k] = c == '=' && i + 4 == clean.size() && k >= 2 ? 0 : value(c);
      if (v[k] < 0) return std::nullopt;
    }
    uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += char(n >> 16);
    if (clean[i + 2] != '=') out += char((n >> 8) & 0xff);
    if (clean[i + 3] != '=') out += char(n & 0xff);
  }
  return out;
}

inline std::string HexPrefix(const std::string& raw) { return Sha256Hex(raw).substr(0, 16); }

struct TrustedKeys {
  std::map<std::string, std::string> keys;  // key id -> raw 32-byte Ed25519 public key
  std::string source;
  std::string Describe() const {
    std::string ids;
    for (const auto& kv : keys) ids += (ids.empty() ? "" : ", ") + kv.first;
    return ids + " (" + source + ")";
  }
};

// An Ed25519 public key in PEM (SubjectPublicKeyInfo, as `tvmedge keys generate` writes public.pem).
inline std::string ReadPublicKey(const std::string& path) {
  std::optional<std::string> text = ReadFile(path);
  if (!text) ConfigError("cannot read public key " + path);
  if (text->find("PRIVATE KEY") != std::string::npos)
    ConfigError(path + " is a private key; trust the public key beside it (public.pem)");
  const std::string begin = "-----BEGIN PUBLIC KEY-----", end = "-----END PUBLIC KEY-----";
  size_t a = text->find(begin), b = text->find(end);
  std::optional<std::string> der;
  if (a != std::string::npos && b != std::string::npos && b > a)
    der = Base64Decode(text->substr(a + begin.size(), b - a - begin.size()));
  // DER of SubjectPublicKeyInfo { AlgorithmIdentifier { 1.3.101.112 (Ed25519) }, BIT STRING (32 bytes) }
  static const unsigned char prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
  if (!der || der->size() != 44 || !std::equal(prefix, prefix + 12, reinterpret_cast<const unsigned char*>(der->data())))
    ConfigError(path + " is not an Ed25519 PEM public key (make one with `tvmedge keys generate`)");
  return der->substr(12);
}

// Keys from a .pem file or a folder of them (sorted), for each item given.
inline TrustedKeys ReadTrustedKeys(const std::vector<std::string>& items, const std::string& source) {
  TrustedKeys trusted;
  trusted.source = items.size() == 1 ? source + " " + items[0] : source;
  for (const std::string& item : items) {
    struct stat st;
    if (stat(item.c_str(), &st) != 0) ConfigError("trusted key " + item + " (" + source + ") does not exist");
    std::vector<std::string> files;
    if (S_ISDIR(st.st_mode)) {
      if (DIR* dir = opendir(item.c_str())) {
        while (dirent* entry = readdir(dir)) {
          std::string name = entry->d_name;
          if (name.size() > 4 && name.compare(name.size() - 4, 4, ".pem") == 0) files.push_back(item + "/" + name);
        }
        closedir(dir);
      }
      std::sort(files.begin(), files.end());
      if (files.empty()) ConfigError("trusted key folder " + item + " holds no .pem public keys");
    } else {
      files.push_back(item);
    }
    for (const std::string& file : files) {
      std::string raw = ReadPublicKey(file);
      trusted.keys[HexPrefix(raw)] = raw;
    }
  }
  return trusted;
}

// Check dir/manifest.sig for the manifest's digest; returns the signer's key id. Messages as the Python loader's.
inline std::string VerifySignature(const std::string& dir, const std::string& digest, const TrustedKeys& keys,
                                   const std::optional<std::string>& recorded_key) {
  std::string path = dir + "/manifest.sig";
  std::optional<std::string> text = ReadFile(path);
  if (!text)
    ArtifactError(dir + " is not signed (no manifest.sig); this runtime trusts only key " + keys.Describe() +
                  ": refusing to load it");
  ffi::String error;
  ffi::Any parsed = ffi::json::Parse(*text, &error);
  auto data = parsed.as<JsonMap>();
  auto field = [&](const char* key) -> std::string {
    if (!data) return "";
    auto it = data->find(ffi::String(key));
    return it == data->end() ? "" : std::string((*it).second.as<ffi::String>().value_or(""));
  };
  std::optional<std::string> signature = Base64Decode(field("signature"));
  if (!error.empty() || !data || field("format") != "tvmedge-signature" || field("algorithm") != "ed25519" ||
      field("key_id").empty() || !signature || signature->size() != 64)
    ArtifactError(path + " is malformed (not a tvmedge Ed25519 signature); refusing to load " + dir);
  std::string signer = field("key_id");
  auto key = keys.keys.find(signer);
  if (key == keys.keys.end())
    ArtifactError(dir + " is signed by key " + signer.substr(0, 16) + ", which is not trusted (expected key " +
                  keys.Describe() + "): refusing to load it");
  if (field("digest") != digest || (recorded_key && *recorded_key != signer))
    ArtifactError(path + " signs another manifest than " + dir + "'s (edited after signing): refusing to load it");
  std::string message = "tvmedge-artifact-signature-v1:" + digest;
  if (crypto_ed25519_check(reinterpret_cast<const uint8_t*>(signature->data()),
                           reinterpret_cast<const uint8_t*>(key->second.data()),
                           reinterpret_cast<const uint8_t*>(message.data()), message.size()) != 0)
    ArtifactError(path + " does not verify with key " + signer + " (forged or altered): refusing to load " + dir);
  return signer;
}

// --- encryption at rest: the C++ twin of tvmedge/runtime/trust.py's decryption ---------------------------------

struct SecretKey {
  std::string key;  // 32 bytes
  std::string where;  // the key file, for messages
  std::string Id() const { return Sha256Hex("tvmedge-encryption-key-id:" + key).substr(0, 16); }
};

inline SecretKey ReadSecretKey(const std::string& path) {
  std::optional<std::string> text = ReadFile(path);
  if (!text) ConfigError("cannot read encryption key " + path);
  std::optional<std::string> key = Base64Decode(*text);
  if (!key || key->size() != 32)
    ConfigError(path + " is not a tvmedge encryption key (32 bytes, base64; make one with `tvmedge keys secret`)");
  return {*key, path};
}

// nonce (12 bytes) + ciphertext + tag (16 bytes), the library's name as associated data (RFC 8439).
inline std::string DecryptLibrary(const std::string& path, const std::string& name, const SecretKey& secret) {
  std::optional<std::string> data = ReadFile(path);
  if (!data) ArtifactError(path + " is missing from the artifact");
  bool ok = data->size() >= 28;
  std::string plain(ok ? data->size() - 28 : 0, '\0');
  if (ok) {
    const uint8_t* bytes = reinterpret_cast<const uint8_t*>(data->data());
    crypto_aead_ctx ctx;
    crypto_aead_init_ietf(&ctx, reinterpret_cast<const uint8_t*>(secret.key.data()), bytes);
    ok = crypto_aead_read(&ctx, reinterpret_cast<uint8_t*>(&plain[0]), bytes + data->size() - 16,
                          reinterpret_cast<const uint8_t*>(name.data()), name.size(), bytes + 12, plain.size()) == 0;
    crypto_wipe(&ctx, sizeof(ctx));
  }
  if (!ok)
    ArtifactError("cannot decrypt " + path + " with key " + secret.Id() + " (" + secret.where +
                  "): wrong key or altered file");
  return plain;
}

}  // namespace tvmedge

#endif  // TVMEDGE_NATIVE_TRUST_H
