"""Checkpoint signatures are trusted only through a key from outside the database."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from core.audit import access, signing
from core.audit.models import AuditCheckpoint
from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.db import session_factory, transaction, utcnow
from core.errors import ServiceUnavailable
from governance.audit import verification
from governance.cli import app as cli

READER = Principal(key_id="reader", name="reader", role=Role.compliance)


@pytest.fixture
def signed(settings: Settings, engine: sa.Engine, tmp_path: Path) -> Settings:
    """Five access-chain records and one genuine checkpoint of their head, signed with a key
    kept in its own folder (the signer's host). Yields the signer's settings."""
    signer = settings.model_copy(update={"signing_key_file": tmp_path / "signer" / "signing.key"})
    with transaction(session_factory(engine)) as session:
        for i in range(5):
            access.record(session, READER, "decisions.read", target=f"d{i}")
        verification.create_checkpoint(session, signer, access.CHAIN, "test")
    return signer


def _forge(engine: sa.Engine) -> Ed25519PrivateKey:
    """What someone with write access to the database can do: sign the head with their own key
    and store their public key beside it."""
    attacker = Ed25519PrivateKey.generate()
    with transaction(session_factory(engine)) as session:
        seq = 5
        record_hash = verification.record_hash_at(session, access.CHAIN, seq)
        assert record_hash is not None
        signed_at = utcnow()
        session.add(
            AuditCheckpoint(
                chain=access.CHAIN,
                seq=seq,
                record_hash=record_hash,
                signed_at=signed_at,
                signature=signing.sign(
                    attacker, access.CHAIN, seq, record_hash, signed_at.isoformat()
                ),
                public_key=signing.public_key_b64(attacker),
                created_by="attacker",
            )
        )
    return attacker


def _report(engine: sa.Engine, settings: Settings) -> dict[str, Any]:
    with transaction(session_factory(engine)) as session:
        return verification.verify_report(session, settings, chains=[access.CHAIN])


def _unwrapped(output: str) -> str:
    """CLI output without the line breaks the console adds at its width."""
    return " ".join(output.split())


def _export_public_key(signer: Settings, monkeypatch: pytest.MonkeyPatch, out: Path) -> None:
    monkeypatch.setenv("GOV_SIGNING_KEY_FILE", str(signer.signing_key_path))
    exported = CliRunner().invoke(cli, ["audit", "public-key", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    monkeypatch.delenv("GOV_SIGNING_KEY_FILE")


def test_a_checkpoint_signed_by_another_key_fails_against_the_configured_public_key(
    signed: Settings,
    env_settings: Settings,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    public = tmp_path / "trusted.pem"
    _export_public_key(signed, monkeypatch, public)
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    _forge(engine)
    # The verifying host has no signing key, only the exported public key.
    verifier = env_settings.model_copy(update={"signing_public_key_file": public})
    assert not verifier.signing_key_path.exists()

    report = _report(engine, verifier)
    assert report["ok"] is False
    assert report["key_trusted"] is True and "trust" not in report
    genuine, forged = report["checkpoints"]
    assert genuine["key_trusted"] is True and genuine["matches"] is True
    assert forged["key_trusted"] is True
    assert forged["signature_valid"] is False and forged["matches"] is False
    assert "not the trusted key" in forged["problem"]

    monkeypatch.setenv("GOV_SIGNING_PUBLIC_KEY_FILE", str(public))
    result = CliRunner().invoke(cli, ["audit", "verify"])
    assert result.exit_code == 1, result.output
    assert "not the trusted key" in _unwrapped(result.output)
    assert not verifier.signing_key_path.exists(), "verification made a signing key"


def test_the_signing_key_file_is_the_trusted_key_when_no_public_key_file_is_set(
    signed: Settings, engine: sa.Engine
) -> None:
    _forge(engine)
    report = _report(engine, signed)
    assert report["key_trusted"] is True
    assert report["trusted_key"]["source"] == "signing key file"
    assert [c["matches"] for c in report["checkpoints"]] == [True, False]
    assert "not the trusted key" in report["checkpoints"][1]["problem"]


def test_without_a_trusted_key_a_forgery_is_reported_as_not_verified_against_one(
    signed: Settings, env_settings: Settings, engine: sa.Engine
) -> None:
    _forge(engine)
    assert not env_settings.signing_key_path.exists()
    report = _report(engine, env_settings)
    # The stored keys still check the signatures, but the report says what that is worth.
    assert report["key_trusted"] is False and report["trusted_key"] is None
    assert "NOT verified against a trusted key" in report["trust"]
    for checkpoint in report["checkpoints"]:
        assert checkpoint["signature_valid"] is True and checkpoint["matches"] is True
        assert checkpoint["key_trusted"] is False
        assert "NOT verified against a trusted key" in checkpoint["trust"]

    result = CliRunner().invoke(cli, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    output = _unwrapped(result.output)
    assert "WARNING checkpoints: the signature was NOT verified against a trusted key" in output
    assert output.count("holds (NOT verified against a trusted key)") == 2
    assert not env_settings.signing_key_path.exists(), "verification made a signing key"


def test_a_raw_base64_public_key_is_accepted_and_a_bad_file_refused(
    signed: Settings, env_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    _forge(engine)
    key = signing.read_private_key(signed.signing_key_path)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public = tmp_path / "trusted.b64"
    public.write_text(base64.b64encode(raw).decode() + "\n")
    report = _report(engine, env_settings.model_copy(update={"signing_public_key_file": public}))
    assert report["key_trusted"] is True
    assert [c["matches"] for c in report["checkpoints"]] == [True, False]

    bad = tmp_path / "bad.pem"
    bad.write_text("secret-looking-content")
    with pytest.raises(ServiceUnavailable) as refused:
        _report(engine, env_settings.model_copy(update={"signing_public_key_file": bad}))
    assert "secret-looking-content" not in refused.value.message
    missing = env_settings.model_copy(update={"signing_public_key_file": tmp_path / "nope"})
    with pytest.raises(ServiceUnavailable):
        _report(engine, missing)


def test_public_key_export_never_makes_a_key(env_settings: Settings, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "public-key", "--out", str(tmp_path / "k.pem")])
    assert result.exit_code == 1
    assert "keygen" in result.output
    assert not env_settings.signing_key_path.exists()
    assert not (tmp_path / "k.pem").exists()
