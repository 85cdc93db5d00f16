"""`govern rebuild NAME VERSION`: rebuild from the lineage, with progress; exit 0 only if identical."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.config import get_settings
from core.db import make_engine, session_factory, transaction
from governance.cli.lineage import ACTOR, _fail, err, out

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker
    from sqlmodel import Session


def rebuild_command(
    name: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[int, typer.Argument(min=1, help="model version")],
    decision: Annotated[
        str | None,
        typer.Option(help="also replay this decision (of that version) on the rebuilt model"),
    ] = None,
) -> None:
    """Rebuild a model version from its recorded lineage and compare it with the registered one.

    Exit status: 0 identical, 1 equivalent or diverged, 2 failed or bad arguments.
    """
    from core.errors import GovernanceError
    from lineage import registry
    from rebuild import service as rebuild_service
    from serving.lookups import get_decision

    settings = get_settings()
    engine = make_engine(settings)
    factory = session_factory(engine)
    try:
        with transaction(factory) as session:
            model, found = registry.get_version(session=session, name=name, version=version)
            if decision is not None:
                record = get_decision(session, decision)
                if (record.model, record.version) != (name, version):
                    err.print(
                        f"[bold red]error:[/] decision {decision} was made by "
                        f"{record.model} v{record.version}, not {name} v{version}"
                    )
                    raise typer.Exit(2)
            job, created = rebuild_service.create_rebuild(
                session=session,
                model=model,
                version=found,
                actor=ACTOR,
                executor="in-process",
                decision_id=decision,
            )
            rebuild_id = job.id
        assert rebuild_id is not None
        if not created:
            err.print(f"rebuild {rebuild_id} of the same is already active: following it")
        with Progress(
            TextColumn(f"[bold]rebuild {rebuild_id}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=err,
        ) as bar:
            task = bar.add_task("queued", total=1.0)
            if created:
                rebuild_service.execute_rebuild(
                    settings, rebuild_id, lambda f, m: bar.update(task, completed=f, description=m)
                )
            else:
                _follow(
                    factory, rebuild_id, lambda f, m: bar.update(task, completed=f, description=m)
                )
        with transaction(factory) as session:
            done = rebuild_service.get_rebuild(session, rebuild_id)
            verdict, report = done.verdict, done.report or {}
    except GovernanceError as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()
    _print_report(rebuild_id, report)
    if verdict != rebuild_service.IDENTICAL:
        raise typer.Exit(2 if verdict in (None, rebuild_service.FAILED) else 1)


def _print_report(rebuild_id: int, report: dict[str, Any]) -> None:
    from rebuild import service as rebuild_service

    verdict = report.get("verdict", "failed")
    colour = {"identical": "green", "equivalent": "yellow"}.get(verdict, "red")
    out.print(f"[bold {colour}]{verdict}[/]  {rebuild_service.summarize(report)}")
    table = Table(show_header=False)
    data = report.get("data") or {}
    if data:
        read = data.get("read") or {}
        table.add_row(
            "data",
            f"{'matched' if data.get('matched') else 'NOT matched'}: md5 {read.get('md5')} "
            f"(recorded {data['recorded']['md5']}); sha256 {str(read.get('sha256'))[:16]}… "
            f"(recorded {data['recorded']['sha256'][:16]}…)"
            + ("" if data.get("in_local_cache") is not False else "; fetched from the DVC remote"),
        )
    artifact = report.get("artifact") or {}
    if artifact:
        table.add_row(
            "artifact",
            f"bytes {'identical' if artifact['bytes_identical'] else 'differ'}, fingerprint "
            f"{'identical' if artifact['fingerprint_identical'] else 'differs'} "
            f"({artifact['rebuilt']['sha256'][:16]}…)",
        )
    environment = report.get("environment")
    if environment is not None:
        packages = environment.get("packages", {})
        others = [k for k in environment if k != "packages"]
        table.add_row(
            "environment",
            "same packages, Python and platform"
            if not packages and not others
            else f"{len(packages)} package(s) differ"
            + "".join(f"; {k} differs" for k in others)
            + "".join(
                f"\n  {n}: {v['recorded']} -> {v['current']}"
                for n, v in list(packages.items())[:10]
            ),
        )
    spec = report.get("spec")
    if spec is not None:
        params = spec.get("params") or {}
        table.add_row(
            "spec and params",
            ("spec matches its recorded hash" if spec["spec_matches_record"] else "spec EDITED")
            + ("; params as recorded" if not params else "")
            + "".join(f"\n  {n}: {v['recorded']} -> {v['rebuilt']}" for n, v in params.items()),
        )
    if report.get("decision"):
        replay = report["decision"]
        table.add_row(
            "decision",
            f"{replay['decision_id']}: logged {replay['logged']['label']} "
            f"({replay['logged']['score']}), rebuilt {replay['rebuilt']['label']} "
            f"({replay['rebuilt']['score']}): "
            + ("replays identically" if replay["replays_identically"] else "DIFFERS"),
        )
    if report.get("duration_s") is not None:
        original = report.get("original_duration_s")
        table.add_row(
            "duration",
            f"{report['duration_s']:.2f}s"
            + (
                f" (original training {original:.2f}s, {report['duration_ratio']:.2f}x)"
                if original
                else ""
            ),
        )
    if report.get("reason"):
        table.add_row("reason", f"{report['reason']['code']}: {report['reason']['message']}")
    out.print(table)
    out.print(f"full report: GET /api/v1/rebuilds/{rebuild_id}")


def _follow(
    factory: sessionmaker[Session], rebuild_id: int, progress: Callable[[float, str], None]
) -> None:
    """Wait for a rebuild another process runs, showing its progress."""
    from lineage.jobs import ACTIVE
    from rebuild import service as rebuild_service

    while True:
        with transaction(factory) as session:
            job = rebuild_service.get_rebuild(session, rebuild_id)
            status, fraction, message = job.status, job.progress, job.message
        progress(fraction, message)
        if status not in ACTIVE:
            return
        time.sleep(0.5)
