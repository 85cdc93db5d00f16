"""`govern audit ...`: verify the chains, sign checkpoints, make and export the signing key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.config import get_settings
from core.db import make_engine, session_factory, transaction

audit_app = typer.Typer(
    help="Tamper evidence: verify hash chains, sign checkpoints.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)


@audit_app.command("verify")
def verify(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(help="An exported checkpoint (JSON) to verify against; repeatable."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Recompute every chain; exit 0 only if every record and checkpoint holds."""
    from core.errors import GovernanceError
    from governance.audit import verification

    settings = get_settings()
    extra = []
    for path in checkpoint or []:
        data = json.loads(path.read_text())
        extra.extend(data if isinstance(data, list) else [data])
    engine = make_engine(settings)
    try:
        with transaction(session_factory(engine)) as session:
            report = verification.verify_report(session, settings, extra_checkpoints=extra)
    except GovernanceError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        if report["key_trusted"]:
            out.print(
                f"checkpoint signatures checked against the {report['trusted_key']['source']}"
            )
        else:
            out.print(f"[bold yellow]WARNING[/] checkpoints: {report['trust']}")
        for chain in report["chains"]:
            if chain["ok"]:
                out.print(
                    f"[green]ok[/] chain {chain['chain']}: {chain['records_checked']} records, head {chain['head_seq']}"
                )
            else:
                p = chain["first_problem"]
                out.print(
                    f"[bold red]FAILED[/] chain {chain['chain']}: record {p['seq']} ({p['id'] or 'unknown id'}) "
                    f"{p['problem']}: {p['detail']}"
                )
        for cp in report["checkpoints"]:
            mark = "[green]ok[/]" if cp["matches"] else "[bold red]FAILED[/]"
            trust = "" if cp["key_trusted"] else " (NOT verified against a trusted key)"
            out.print(
                f"{mark} checkpoint {cp['chain']}@{cp['seq']} signed {cp['signed_at']}: "
                f"{cp.get('problem', 'holds')}{trust}"
            )
    raise typer.Exit(0 if report["ok"] else 1)


@audit_app.command("checkpoint")
def checkpoint(
    chain: Annotated[str, typer.Option(help="Which chain")] = "decision",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Also write the checkpoint here")
    ] = None,
) -> None:
    """Sign the chain head; keep the printed JSON somewhere the database's admins cannot write."""
    from governance.audit import verification

    settings = get_settings()
    engine = make_engine(settings)
    try:
        with transaction(session_factory(engine)) as session:
            data = verification.checkpoint_dict(
                verification.create_checkpoint(session, settings, chain, "cli")
            )
    finally:
        engine.dispose()
    text = json.dumps(data, indent=2)
    if out_file:
        out_file.write_text(text + "\n")
    print(text)


@audit_app.command("keygen")
def keygen() -> None:
    """Create the Ed25519 checkpoint signing key (GOV_SIGNING_KEY_FILE), mode 0600."""
    from core.audit import signing

    settings = get_settings()
    path = settings.signing_key_path
    if path.exists():
        out.print(f"{path} already exists; not overwriting it")
        raise typer.Exit(1)
    signing.generate_key_file(path)
    out.print(
        f"wrote {path}; public key {signing.public_key_b64(signing.load_signing_key(settings))}"
    )


@audit_app.command("public-key")
def public_key(
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the PEM public key to this file")
    ] = None,
) -> None:
    """Export the signing key's public key (PEM), for GOV_SIGNING_PUBLIC_KEY_FILE on verifiers."""
    from core.audit import signing
    from core.errors import GovernanceError

    settings = get_settings()
    path = settings.signing_key_path
    if not path.exists():
        err.print(f"no signing key at {path}; create one with `govern audit keygen`")
        raise typer.Exit(1)
    try:
        key = signing.read_private_key(path)
    except GovernanceError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    pem = signing.public_key_pem(key)
    if out_file is None:
        print(pem.decode("ascii"), end="")
        return
    out_file.write_bytes(pem)
    out.print(
        f"wrote {out_file}; public key {signing.public_key_b64(key)}. On every host that "
        f"verifies, set GOV_SIGNING_PUBLIC_KEY_FILE to a copy of it that the database's "
        "admins cannot write."
    )
