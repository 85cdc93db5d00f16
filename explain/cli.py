"""`govern explain`: explain every decision of an endpoint in a time window, with progress."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from explain.bulk import CLI, explain_many
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


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _group_name(group: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in group.items())


def fairness(
    endpoint: Annotated[str, typer.Option(help="Endpoint whose decisions to audit.")],
    attribute: Annotated[
        list[str], typer.Option(help="Protected attribute; repeat for intersectional groups.")
    ],
    window: Annotated[
        str | None, typer.Option(help="day, week or month: a trend by period.")
    ] = None,
    bins: Annotated[
        list[str] | None, typer.Option(help="e.g. age:18,25,40,60,120 (default: the spec's).")
    ] = None,
    since: Annotated[datetime | None, typer.Option(help="From (UTC, inclusive).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Up to (UTC, exclusive).")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model's decisions.")] = None,
    version: Annotated[int | None, typer.Option(help="Only this version (with --model).")] = None,
    route: Annotated[str | None, typer.Option(help="Only this route (live, canary...).")] = None,
    min_group_size: Annotated[
        int | None, typer.Option(min=1, help="Smaller groups are not compared.")
    ] = None,
) -> None:
    """Print the fairness report: by group, across groups, and by period with --window."""
    from explain import fairness_service
    from governance.db import make_engine, session_factory, transaction

    if window not in (None, "day", "week", "month"):
        err.print("[bold red]error:[/] --window: one of day, week, month")
        raise typer.Exit(2)
    settings = get_settings()
    engine = make_engine(settings)
    try:
        with transaction(session_factory(engine)) as session:
            report = fairness_service.report(
                session,
                CLI,
                endpoint=endpoint,
                attributes=attribute,
                bins=bins or [],
                since=_utc(since),
                until=_utc(until),
                model=model,
                version=version,
                route=route,
                window=window,
                min_group_size=min_group_size or settings.fairness_min_group_size,
                min_cell_size=settings.min_cell_size,
            )
    except GovernanceError as exc:
        err.print(f"[bold red]error:[/] {exc.message}")
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    _print_report(report)


def _small(entry: dict[str, Any]) -> str:
    return " *" if entry.get("below_reporting_threshold") else ""


def _print_report(report: dict[str, Any]) -> None:
    title = (
        f"fairness on {report['endpoint']}: {report['n']} decisions, "
        f"{report['with_outcomes']} with outcomes; favourable = {report['favourable_label']}"
    )
    table = Table(title=title)
    for name in ("group", "n", "selection rate (95% CI)", "DI ratio", "4/5", "TPR", "FPR"):
        table.add_column(name, justify="left" if name == "group" else "right")
    for group in report["groups"]:
        ci = group["selection_rate_ci95"]
        outcomes = group["outcomes"] or {}
        table.add_row(
            _group_name(group["group"]),
            f"{group['n']}{_small(group)}",
            f"{_pct(group['selection_rate'])} ({_pct(ci[0])} to {_pct(ci[1])})" if ci else "—",
            "too small" if group["too_small"] else f"{group['disparate_impact_ratio']:.3f}",
            "[red]VIOLATED[/]" if group["four_fifths_violation"] else "",
            _pct(outcomes.get("true_positive_rate")),
            _pct(outcomes.get("false_positive_rate")),
        )
    out.print(table)
    test = report.get("selection_rate_test") or {}
    out.print(
        f"demographic parity difference {_pct(report['demographic_parity_difference'])}; "
        f"equalized odds difference {_pct(report['equalized_odds_difference'])}; "
        f"four-fifths rule {'VIOLATED' if report['four_fifths_violation'] else 'holds'}"
        + (f"; {test['test']}: p = {test['p_value']:.3g}" if test else "")
    )
    for model, groups in report["training"].items():
        if isinstance(groups, dict):
            listed = ", ".join(
                f"{g} {_pct(v['selection_rate'])}{_small(v)}" for g, v in groups.items()
            )
            out.print(f"at training ({model}, validation set): selection rate {listed}")
    if report.get("trend"):
        trend = Table(title=f"by {report['window']}")
        trend.add_column("period")
        trend.add_column("n", justify="right")
        names = [_group_name(g["group"]) for g in report["groups"]]
        for name in names:
            trend.add_column(name, justify="right")
        trend.add_column("min DI", justify="right")
        for period in report["trend"]:
            rates = {_group_name(g["group"]): g for g in period["groups"]}
            trend.add_row(
                period["period"],
                str(period["n"]),
                *[
                    "—"
                    if name not in rates
                    else (
                        "small"
                        if rates[name]["too_small"]
                        else _pct(rates[name]["selection_rate"]) + _small(rates[name])
                    )
                    for name in names
                ],
                "—"
                if period["disparate_impact_ratio_min"] is None
                else f"{period['disparate_impact_ratio_min']:.3f}"
                + (" !" if period["four_fifths_violation"] else ""),
            )
        out.print(trend)
    if _any_small(report):
        out.print(
            f"* fewer than {report['reporting_threshold']} people (decisions, or validation "
            "rows at training): below the reporting threshold (GOV_MIN_CELL_SIZE); only "
            "compliance and admin may see such figures"
        )


def _any_small(report: dict[str, Any]) -> bool:
    groups = [*report["groups"], *(g for p in report.get("trend") or [] for g in p["groups"])]
    groups += [
        entry
        for table in report["training"].values()
        if isinstance(table, dict)
        for entry in table.values()
    ]
    return any(g.get("below_reporting_threshold") for g in groups)
