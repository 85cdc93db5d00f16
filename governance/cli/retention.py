"""`govern retention apply`: purge decision payloads past the retention period."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from core.config import get_settings
from core.db import make_engine, session_factory

retention_app = typer.Typer(help="Purge decision payloads past retention.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@retention_app.command("apply")
def apply(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would be purged; change nothing")
    ] = False,
    days: Annotated[
        int | None, typer.Option(min=1, help="override GOV_RETENTION_DAYS for this run")
    ] = None,
    as_of: Annotated[
        datetime | None,
        typer.Option(help="purge as if today were this date (UTC), e.g. to rehearse"),
    ] = None,
) -> None:
    """Purge payloads of decisions older than the retention period, keeping their hashes."""
    from governance.compliance import retention

    settings = get_settings()
    keep = days or settings.retention_days
    now = (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)) if as_of else None
    engine = make_engine(settings)
    try:
        sessions = session_factory(engine)
        with Progress(
            BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True
        ) as bar:
            task = bar.add_task("purging", total=None)
            summary = retention.apply(
                sessions,
                keep,
                now=now,
                dry_run=dry_run,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    finally:
        engine.dispose()
    verb = "would purge" if dry_run else "purged"
    count = summary["records"] if dry_run else summary["purged"]
    out.print(
        f"retention {keep} days, cutoff {summary['cutoff']}: {verb} {count} decision payload(s)"
        + (f" (from {summary['oldest']} to {summary['newest']})" if count else ""),
        soft_wrap=True,
    )
