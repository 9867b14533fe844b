"""Authenticity of an artifact: Ed25519 signatures over the manifest digest, checked before anything is loaded.

The manifest's ``digest`` covers every field, and its ``files`` the sha256 of every library, so one signature
over the digest covers the whole artifact. It is kept beside the manifest, in ``manifest.sig``::

    {"format": "tvmedge-signature", "version": 1, "algorithm": "ed25519",
     "key_id": "3f1c9a0b7d2e4c51", "digest": "<the manifest's digest>", "signature": "<base64>"}

The key id is the first 16 hex digits of the sha256 of the raw 32-byte public key. The signed message is
``b"tvmedge-artifact-signature-v1:" + digest`` (a prefix of its own, so the signature means nothing elsewhere).

Without trusted keys nothing changes (integrity only, as before). With them (``trust=`` of
:func:`tvmedge.runtime.load`, ``--trust``, or ``TVMEDGE_TRUSTED_KEYS``: a ``.pem`` file or a folder of them), an
unsigned artifact, a signature by another key, or one that does not verify is refused with one line naming the
keys that were expected.

The cryptography itself is the ``cryptography`` package's (OpenSSL's Ed25519); it is imported only when a
signature is made or checked, so a board that does not verify signatures does not need it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Union

from ..errors import ArtifactError, ConfigError, ToolchainError

__all__ = ["SIGNATURE_NAME", "TRUST_ENV", "TrustedKeys", "trusted_keys", "verify_signature", "key_id",
           "signed_message", "load_public_key", "crypto", "ENCRYPTION_ALGORITHM", "DECRYPT_ENV", "read_secret_key",
           "secret_key_id", "decryption_key", "decrypt_library"]

SIGNATURE_NAME = "manifest.sig"
SIGNATURE_FORMAT = "tvmedge-signature"
TRUST_ENV = "TVMEDGE_TRUSTED_KEYS"
_PREFIX = b"tvmedge-artifact-signature-v1:"
_MAX_KEY_BYTES = 16 << 10


def crypto():
    """The ``cryptography`` package's Ed25519 and serialization modules; ToolchainError in one line if absent."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as err:
        raise ToolchainError("signed artifacts need the cryptography package: pip install cryptography") from err
    return ed25519, serialization


def signed_message(digest: str) -> bytes:
    return _PREFIX + digest.encode("ascii")


def key_id(public_key) -> str:
    """First 16 hex digits of the sha256 of the raw public key."""
    _, serialization = crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: Path):
    """An Ed25519 public key from a PEM file; ConfigError (one line) for anything else."""
    ed25519, serialization = crypto()
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_KEY_BYTES + 1)
        key = serialization.load_pem_public_key(data)
    except OSError as err:
        raise ConfigError(f"cannot read public key {path}: {err.strerror or err}") from err
    except ValueError as err:
        if b"PRIVATE KEY" in data:
            raise ConfigError(f"{path} is a private key; trust the public key beside it (public.pem)") from err
        raise ConfigError(f"{path} is not a PEM public key (make one with `tvmedge keys generate`)") from err
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key (make one with `tvmedge keys generate`)")
    return key


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys an artifact may be signed by, by key id, and where they came from (for messages)."""

    keys: dict  # key id -> Ed25519PublicKey
    source: str

    def describe(self) -> str:
        return f"{', '.join(sorted(self.keys))} ({self.source})"


def trusted_keys(trust: Union[None, str, os.PathLike, Iterable, TrustedKeys] = None) -> Optional[TrustedKeys]:
    """The keys to verify with: ``trust`` (a ``.pem`` file, a folder of ``.pem`` files, or a list of either), else
    ``$TVMEDGE_TRUSTED_KEYS``, else None (no signature required)."""
    if isinstance(trust, TrustedKeys):
        return trust
    source = "--trust"
    if trust is None or trust == ():
        env = os.environ.get(TRUST_ENV)
        if not env:
            return None
        trust, source = env, TRUST_ENV
    items = [trust] if isinstance(trust, (str, os.PathLike)) else list(trust)
    keys = {}
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix == ".pem" and p.is_file())
            if not files:
                raise ConfigError(f"trusted key folder {path} holds no .pem public keys")
        elif path.is_file():
            files = [path]
        else:
            raise ConfigError(f"trusted key {path} ({source}) does not exist")
        for file in files:
            key = load_public_key(file)
            keys[key_id(key)] = key
    return TrustedKeys(keys, source if len(items) != 1 else f"{source} {items[0]}")


def verify_signature(directory, digest: str, keys: TrustedKeys, recorded_key: Optional[str] = None) -> str:
    """Check ``directory/manifest.sig`` against ``keys`` for the manifest ``digest`` -> the signing key id.

    ``recorded_key`` is the key id the manifest's provenance names (it must be the signer's).

    Raises
    ------
    ArtifactError
        Unsigned, signed by a key not trusted, or a signature that does not verify (one line, naming the keys).
    """
    directory = Path(directory)
    path = directory / SIGNATURE_NAME
    expected = keys.describe()
    if not path.is_file():
        raise ArtifactError(f"{directory} is not signed (no {SIGNATURE_NAME}); this runtime trusts only key "
                            f"{expected}: refusing to load it")
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(_MAX_KEY_BYTES + 1))
        if not isinstance(data, dict) or data.get("format") != SIGNATURE_FORMAT or data.get("algorithm") != "ed25519":
            raise ValueError("not a tvmedge Ed25519 signature")
        signer, signed_digest = str(data["key_id"]), str(data["digest"])
        signature = base64.b64decode(str(data["signature"]), validate=True)
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
        raise ArtifactError(f"{path} is malformed ({err}); refusing to load {directory}") from err
    if signer not in keys.keys:
        raise ArtifactError(f"{directory} is signed by key {signer[:16]}, which is not trusted (expected key "
                            f"{expected}): refusing to load it")
    if signed_digest != digest or (recorded_key is not None and recorded_key != signer):
        raise ArtifactError(f"{path} signs another manifest than {directory}'s (edited after signing): refusing to load it")
    from cryptography.exceptions import InvalidSignature

    try:
        keys.keys[signer].verify(signature, signed_message(digest))
    except InvalidSignature as err:
        raise ArtifactError(f"{path} does not verify with key {signer} (forged or altered): refusing to load "
                            f"{directory}") from err
    return signer


# --- encryption at rest ----------------------------------------------------------------------------------------
# ChaCha20-Poly1305 (RFC 8439) rather than AES-GCM: the C++ loader decrypts with the same Monocypher it verifies
# signatures with (Monocypher has no AES), and boards without AES instructions (RISC-V) run it fast in software.
# An encrypted library file is nonce (12 bytes) + ciphertext + tag; the library's name is the associated data,
# so two encrypted libraries cannot be swapped. The manifest's sha256 is the encrypted file's: integrity and
# signature are checked without the key, and plaintext exists only in memory (a memfd) on the board.
ENCRYPTION_ALGORITHM = "chacha20-poly1305"
DECRYPT_ENV = "TVMEDGE_DECRYPTION_KEY"
_NONCE = 12


def read_secret_key(path) -> bytes:
    """The 32-byte key in ``path`` (base64 text, as ``tvmedge keys secret`` writes it); ConfigError otherwise."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(1024)
    except OSError as err:
        raise ConfigError(f"cannot read encryption key {path}: {err.strerror or err}") from err
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"{path} is not a tvmedge encryption key (32 bytes, base64; make one with `tvmedge keys secret`)")
    return key


def secret_key_id(key: bytes) -> str:
    """An id that names the key without revealing it: 16 hex digits of sha256 over a fixed prefix and the key."""
    return hashlib.sha256(b"tvmedge-encryption-key-id:" + key).hexdigest()[:16]


def _aead(key: bytes):
    crypto()  # the one-line error when cryptography is missing
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    return ChaCha20Poly1305(key)


def decryption_key(decrypt=None) -> Optional[tuple]:
    """``(key, where it came from)`` from ``decrypt`` (a key file) or ``$TVMEDGE_DECRYPTION_KEY``, or None."""
    if decrypt is None:
        decrypt = os.environ.get(DECRYPT_ENV) or None
        if decrypt is None:
            return None
    if isinstance(decrypt, tuple):
        return decrypt
    return read_secret_key(decrypt), str(decrypt)


def decrypt_library(path: Path, name: str, key: bytes, where: str) -> bytes:
    """The plaintext of the encrypted library at ``path``; ArtifactError (one line) for a wrong key or an altered
    file."""
    from cryptography.exceptions import InvalidTag

    data = Path(path).read_bytes()
    try:
        return _aead(key).decrypt(data[:_NONCE], data[_NONCE:], name.encode())
    except InvalidTag as err:
        raise ArtifactError(f"cannot decrypt {path} with key {secret_key_id(key)} ({where}): wrong key or altered file") from err
