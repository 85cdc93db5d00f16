"""`govern explain`: explain every decision of an endpoint in a time window, with progress."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from explain.bulk import explain_many
from governance.config import get_settings
from governance.errors import GovernanceError
from lineage.executor import make_executor

out = Console()
err = Console(stderr=True)


class Method(StrEnum):
    shap = "shap"
    anchor = "anchor"
    counterfactual = "counterfactual"


def explain(
    endpoint: Annotated[str, typer.Option(help="Endpoint whose decisions to explain.")],
    method: Annotated[Method, typer.Option(help="Explanation method.")] = Method.shap,
    since: Annotated[
        datetime | None, typer.Option(help="From this time (UTC, inclusive), e.g. 2026-11-01.")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Up to this time (UTC, exclusive).")
    ] = None,
    k: Annotated[int, typer.Option(min=1, max=10, help="Counterfactuals per decision.")] = 3,
    threshold: Annotated[
        float, typer.Option(min=0.5, max=0.99, help="Anchor precision threshold.")
    ] = 0.95,
) -> None:
    """Compute and store explanations for many decisions; stored ones are kept as they are."""
    settings = get_settings()
    params: dict[str, Any] = {"seed": None}
    if method is Method.anchor:
        params["threshold"] = threshold
    elif method is Method.counterfactual:
        params["k"] = k
    executor = make_executor(settings)
    try:
        with Progress(
            TextColumn(f"[bold]{method.value}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=err,
        ) as bar:
            task = bar.add_task("finding decisions", total=None)

            def report(done: int, total: int, message: str) -> None:
                bar.update(task, completed=done, total=total, description=message)

            future = executor.submit(
                explain_many,
                settings,
                endpoint,
                method.value,
                params,
                _utc(since),
                _utc(until),
                report,
            )
            result = future.result()
    except GovernanceError as exc:
        err.print(f"[bold red]error:[/] {exc.message}")
        raise typer.Exit(2) from None
    finally:
        executor.shutdown()
    out.print(
        f"{result.total} decisions: {result.computed} explained, "
        f"{result.already_stored} already stored, {len(result.failed)} failed"
    )
    for failure in result.failed[:20]:
        err.print(f"  {failure['decision_id']}: {failure['error']}")
    if result.failed:
        raise typer.Exit(1)


def _utc(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
