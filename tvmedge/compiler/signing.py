"""Signing and encrypting artifacts (the builder's side of :mod:`tvmedge.runtime.trust`): Ed25519 key pairs and
``manifest.sig``; ChaCha20-Poly1305 keys and encrypted libraries (``compile --encrypt``).

>>> from tvmedge.compiler.signing import generate_keys
>>> generate_keys("keys/")["key_id"]                 # keys/private.pem (0600) + keys/public.pem
'3f1c9a0b7d2e4c51'

``tvmedge compile ... --sign keys/private.pem`` (or ``TVMEDGE_SIGNING_KEY``) records the key id in the
manifest's provenance and writes ``manifest.sig`` over the manifest's digest; boards verify with the public key
(``--trust keys/public.pem``). The cryptography is the ``cryptography`` package's; nothing here is hand-written.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Optional

from ..errors import ConfigError
from ..runtime.trust import (ENCRYPTION_ALGORITHM, SIGNATURE_FORMAT, SIGNATURE_NAME, crypto, key_id, read_secret_key,
                             secret_key_id, signed_message)

__all__ = ["generate_keys", "load_signing_key", "sign_artifact", "SIGNING_ENV", "generate_secret",
           "load_encryption_key", "encrypt_libraries", "ENCRYPTION_ENV"]

SIGNING_ENV = "TVMEDGE_SIGNING_KEY"
ENCRYPTION_ENV = "TVMEDGE_ENCRYPTION_KEY"
PRIVATE_NAME, PUBLIC_NAME = "private.pem", "public.pem"


def generate_keys(out) -> dict:
    """Write a new Ed25519 key pair: ``out/private.pem`` (mode 0600, PKCS#8) and ``out/public.pem`` beside it.

    Returns ``{"private": path, "public": path, "key_id": ...}``. ConfigError if either file exists (a key is
    never overwritten: artifacts signed with it would no longer verify anywhere).
    """
    ed25519, serialization = crypto()
    out = Path(out)
    private_path, public_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(f"{path} exists; keys are never overwritten (choose another -o)")
    out.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # created 0600 from the start (no moment where another user could read it)
    handle = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as stream:
        stream.write(private_pem)
    public_path.write_bytes(public_pem)
    return {"private": str(private_path), "public": str(public_path), "key_id": key_id(key.public_key())}


def load_signing_key(path: Optional[str] = None):
    """The Ed25519 private key at ``path`` (default ``$TVMEDGE_SIGNING_KEY``), or None when neither is given.

    ConfigError (one line) for a missing, unreadable or non-Ed25519 key, or a public key given by mistake.
    """
    path = path or os.environ.get(SIGNING_ENV)
    if not path:
        return None
    ed25519, serialization = crypto()
    try:
        data = Path(path).read_bytes()[: 1 << 16]
        key = serialization.load_pem_private_key(data, password=None)
    except OSError as err:
        raise ConfigError(f"cannot read signing key {path}: {err.strerror or err}") from err
    except (ValueError, TypeError) as err:
        if b"PUBLIC KEY" in data:
            raise ConfigError(f"{path} is a public key; sign with the private key (private.pem)") from err
        raise ConfigError(f"{path} is not an unencrypted PEM private key (make one with `tvmedge keys generate`)") from err
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key (make one with `tvmedge keys generate`)")
    return key


def signing_key_id(key) -> Optional[str]:
    return None if key is None else key_id(key.public_key())


def sign_artifact(directory, digest: str, key) -> Path:
    """Write ``directory/manifest.sig``: ``key``'s Ed25519 signature over the manifest ``digest``."""
    signature = key.sign(signed_message(digest))
    record = {"format": SIGNATURE_FORMAT, "version": 1, "algorithm": "ed25519", "key_id": key_id(key.public_key()),
              "digest": digest, "signature": base64.b64encode(signature).decode("ascii")}
    path = Path(directory) / SIGNATURE_NAME
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


# --- encryption at rest (the builder's side of tvmedge.runtime.trust's decryption) -------------------------------


def generate_secret(path) -> dict:
    """Write a new 32-byte encryption key (base64, mode 0600) to ``path`` -> ``{"key": path, "key_id": ...}``.
    ConfigError if the file exists."""
    path = Path(path)
    if path.exists():
        raise ConfigError(f"{path} exists; keys are never overwritten (choose another -o)")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as stream:
        stream.write(base64.b64encode(key) + b"\n")
    return {"key": str(path), "key_id": secret_key_id(key)}


def load_encryption_key(path: Optional[str] = None) -> Optional[bytes]:
    """The key at ``path`` (default ``$TVMEDGE_ENCRYPTION_KEY``), or None when neither is given."""
    path = path or os.environ.get(ENCRYPTION_ENV)
    return read_secret_key(path) if path else None


def encrypt_libraries(folder: Path, names, key: bytes) -> dict:
    """Encrypt each library ``folder/name`` in place (ChaCha20-Poly1305, the name as associated data) -> the
    manifest's ``encryption`` record. The nonce is a keyed hash of the name and the plaintext: unique per
    content, and the same build gives the same bytes (artifacts stay reproducible)."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    crypto()
    for name in names:
        path = Path(folder) / name
        plaintext = path.read_bytes()
        nonce = hmac.new(key, name.encode() + b"\0" + plaintext, hashlib.sha256).digest()[:12]
        path.write_bytes(nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, name.encode()))
    return {"algorithm": ENCRYPTION_ALGORITHM, "key_id": secret_key_id(key), "files": sorted(names)}
