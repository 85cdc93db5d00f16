"""Ed25519 signatures over chain heads. The private key lives in a file, never in the database:
whoever can rewrite the database still cannot forge a checkpoint."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from governance.audit.chain import canonical_json
from governance.config import Settings
from governance.errors import ServiceUnavailable


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def load_signing_key(settings: Settings) -> Ed25519PrivateKey:
    path = settings.signing_key_path
    if not path.exists():
        if settings.environment == "production":
            raise ServiceUnavailable(
                f"no checkpoint signing key at {path}; create one with `govern audit keygen` "
                "and keep it outside the database host's backups"
            )
        generate_key_file(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ServiceUnavailable(f"{path} does not hold an Ed25519 private key")
    return key


def generate_key_file(path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64(raw)


def signed_message(chain: str, seq: int, record_hash: str, signed_at: str) -> bytes:
    return canonical_json(
        {"chain": chain, "seq": seq, "record_hash": record_hash, "signed_at": signed_at}
    ).encode()


def sign(key: Ed25519PrivateKey, chain: str, seq: int, record_hash: str, signed_at: str) -> str:
    return _b64(key.sign(signed_message(chain, seq, record_hash, signed_at)))


def signature_valid(checkpoint: dict[str, Any], trusted_public_key: str | None = None) -> bool:
    try:
        public = trusted_public_key or checkpoint["public_key"]
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public))
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
