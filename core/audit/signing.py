"""Ed25519 signatures over chain heads. The private key lives in a file, never in the database:
whoever can rewrite the database still cannot forge a checkpoint.

That holds only if verification trusts a key from outside the database. The public key stored
beside each checkpoint is whatever the database says, so a forger who re-signs a rewritten
chain stores their own key there. Verification therefore uses, in order, the public key file
(``GOV_SIGNING_PUBLIC_KEY_FILE``), then the public half of the signing key file; only when
neither exists does it fall back to the stored key, and it says so in every result.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.audit.chain import canonical_json
from core.config import Settings
from core.errors import ServiceUnavailable

# A PEM public key is about 113 bytes; anything far larger is not one.
_MAX_KEY_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class TrustedKey:
    """A public key that comes from outside the database, and where it came from."""

    public_key: str
    source: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def load_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The key that signs new checkpoints; outside production, made on first use."""
    path = settings.signing_key_path
    if not path.exists():
        if settings.environment == "production":
            raise ServiceUnavailable(
                f"no checkpoint signing key at {path}; create one with `govern audit keygen` "
                "and keep it outside the database host's backups"
            )
        generate_key_file(path)
    return read_private_key(path)


def read_private_key(path: Path) -> Ed25519PrivateKey:
    """An existing signing key file; never creates one."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm):
        raise ServiceUnavailable(f"{path} cannot be read as a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ServiceUnavailable(f"{path} does not hold an Ed25519 private key")
    return key


def generate_key_file(path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64(raw)


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def read_public_key(path: Path) -> str:
    """The raw key, base64, from a PEM Ed25519 public key or the raw 32 bytes in base64.

    Errors name the file, never its contents."""
    unusable = ServiceUnavailable(
        f"the trusted public key file {path} (GOV_SIGNING_PUBLIC_KEY_FILE) does not hold an "
        "Ed25519 public key, as PEM or as the raw 32-byte key in base64; export one with "
        "`govern audit public-key --out FILE`"
    )
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1).strip()
    except OSError:
        raise ServiceUnavailable(
            f"cannot read the trusted public key file {path} (GOV_SIGNING_PUBLIC_KEY_FILE)"
        ) from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise unusable
    if data.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise unusable from None
        if not isinstance(key, Ed25519PublicKey):
            raise unusable
        return _b64(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise unusable from None
    if len(raw) != 32:
        raise unusable
    return _b64(raw)


def trusted_public_key(settings: Settings) -> TrustedKey | None:
    """The key checkpoints must verify against, from outside the database; None if there is none.

    Reads files only: it never makes a signing key, or a fresh key would "verify" nothing."""
    if settings.signing_public_key_file is not None:
        path = settings.signing_public_key_file
        return TrustedKey(read_public_key(path), "public key file GOV_SIGNING_PUBLIC_KEY_FILE")
    path = settings.signing_key_path
    if path.exists():
        return TrustedKey(public_key_b64(read_private_key(path)), "signing key file")
    return None


def same_key(a: str | None, b: str | None) -> bool:
    """Two base64 public keys are the same key (whatever their padding or line breaks)."""
    if not a or not b:
        return False
    try:
        return base64.b64decode(a) == base64.b64decode(b)
    except ValueError:
        return False


def signed_message(chain: str, seq: int, record_hash: str, signed_at: str) -> bytes:
    return canonical_json(
        {"chain": chain, "seq": seq, "record_hash": record_hash, "signed_at": signed_at}
    ).encode()


def sign(key: Ed25519PrivateKey, chain: str, seq: int, record_hash: str, signed_at: str) -> str:
    return _b64(key.sign(signed_message(chain, seq, record_hash, signed_at)))


def signature_valid(checkpoint: dict[str, Any], public_key: str | None) -> bool:
    """Whether the checkpoint's signature verifies against ``public_key`` (base64, raw)."""
    if not public_key:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        key.verify(
            base64.b64decode(checkpoint["signature"]),
            signed_message(
                checkpoint["chain"],
                int(checkpoint["seq"]),
                checkpoint["record_hash"],
                checkpoint["signed_at"],
            ),
        )
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
    return True
