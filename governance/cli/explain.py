"""`govern explain`: explain every decision of an endpoint in a time window, with progress."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from core.config import get_settings

if TYPE_CHECKING:
    from lineage.input_schema import InputSchema

out = Console()
err = Console(stderr=True)


class Method(StrEnum):
    shap = "shap"
    anchor = "anchor"
    counterfactual = "counterfactual"
    robustness = "robustness"


def explain(
    endpoint: Annotated[
        str | None, typer.Option(help="Endpoint whose decisions to explain.")
    ] = None,
    decision: Annotated[
        str | None,
        typer.Option(help="Explain this one decision instead, and print it in words."),
    ] = None,
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
    """Compute and store explanations for many decisions (stored ones are kept as they are), or
    for one decision with --decision, printed in words."""
    if (endpoint is None) == (decision is None):
        err.print("[bold red]error:[/] give --endpoint (its decisions) or --decision (one)")
        raise typer.Exit(2)
    from core.errors import GovernanceError
    from explain.bulk import explain_many
    from lineage.executor import make_executor

    settings = get_settings()
    params: dict[str, Any] = {"seed": None}
    if method is Method.anchor:
        params["threshold"] = threshold
    elif method is Method.counterfactual:
        params["k"] = k
    elif method is Method.robustness:
        params["fragile_below"] = settings.robustness_fragile_below
    if decision is not None:
        _explain_one(decision, method.value, params)
        return
    assert endpoint is not None
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


def _explain_one(decision_id: str, method: str, params: dict[str, Any]) -> None:
    """One decision, explained (or read from storage) in process, and printed in words."""
    from core.db import make_engine, session_factory, transaction
    from core.errors import GovernanceError
    from explain import service as explain_service
    from explain.bulk import CLI
    from lineage import registry
    from lineage.input_schema import InputSchema
    from serving.state import Serving

    settings = get_settings()
    engine = make_engine(settings)
    sessions = session_factory(engine)
    serving = Serving.create(settings, sessions)
    explainers = explain_service.Explainers.create(serving, sessions, settings, workers=False)
    try:
        with transaction(sessions) as session:
            result = explain_service.explain(session, explainers, decision_id, method, params, CLI)
            logged = explain_service.logged_decision(session, decision_id)
            _model, version = registry.get_version(
                session=session,
                name=logged.model["name"],
                version=int(logged.model["version"]),
            )
            schema = InputSchema.from_document(version.input_schema)
            detector = (version.lineage or {}).get("outlier_detector") or {}
    except GovernanceError as exc:
        err.print(f"[bold red]error:[/] {exc.message}")
        raise typer.Exit(2) from None
    finally:
        serving.shadow_pool.shutdown(wait=False)
        engine.dispose()
    _print_decision(logged.content, schema, detector.get("threshold"))
    _print_explanation(method, result, schema, logged.features)


def _say(text: str) -> None:
    """A line of data as it is: no markup, no highlighting, never wrapped."""
    out.print(text, highlight=False, markup=False, soft_wrap=True)


def _print_decision(
    content: dict[str, Any], schema: InputSchema, outlier_threshold: float | None
) -> None:
    """The decision as a person reads it: "denied (class no): score 0.38 (approved at 0.50 or
    above)", the outlier score with its threshold, and each input with its label."""
    from governance.compliance.dossier import class_in_words, decision_in_words, outlier_in_words

    model = content.get("model") or {}
    words = decision_in_words(
        schema,
        content.get("label"),
        content.get("score"),
        content.get("features") or {},
        outlier_in_words(
            content.get("outlier_score"), content.get("is_outlier"), outlier_threshold
        ),
    )
    _say(
        f"decision {content.get('decision_id')} on {content.get('endpoint')} "
        f"({model.get('name')} v{model.get('version')}, {content.get('created_at')})"
    )
    _say(f"  {class_in_words(schema, content.get('label'))}: {words['score_text']}")
    _say(f"  {words['outlier']['text']}")
    table = Table("feature", "value", "description", box=None, pad_edge=False)
    for feature in words["features"]:
        name = feature["name"] + (" (also protected)" if feature["also_protected"] else "")
        table.add_row(Text(name), Text(feature["text"]), Text(feature["description"]))
    out.print(table)


def _print_explanation(
    method: str, result: dict[str, Any], schema: InputSchema, features: dict[str, Any]
) -> None:
    from governance.compliance.dossier import (
        changes_in_words,
        class_in_words,
        decision_words,
        score_in_words,
    )
    from lineage.input_schema import feature_label

    stored = "stored" if result.get("cached") else "computed now"
    _say(f"{method} ({stored}, seed {result.get('seed')}):")
    if method == "shap":
        words = decision_words(schema)
        favourable_up = schema.is_favourable(schema.positive_class) is not False
        by_name = schema.by_name
        values = result.get("values") or {}
        for name, value in sorted(values.items(), key=lambda item: -abs(item[1]))[:5]:
            towards = words["favourable"] if (value > 0) == favourable_up else words["unfavourable"]
            shown = feature_label(by_name.get(name), features.get(name))
            _say(
                f"  {name} = {shown}: {value:+.4f} (towards {towards})"
                if name in features
                else f"  {name}: {value:+.4f} (towards {towards})"
            )
    elif method == "anchor":
        reliable = result.get("reliable", result.get("meets_threshold"))
        _say(f"  while {result.get('rule')}")
        if reliable:
            _say(
                f"  a reliable rule: precision {result.get('precision'):.3f} on "
                f"{result.get('coverage_rows')} training rows (95% lower bound "
                f"{result.get('precision_lower_bound'):.3f}, threshold {result.get('threshold')})"
            )
        else:
            _say(f"  {result.get('message') or 'no reliable rule'}")
    elif method == "counterfactual":
        found = result.get("counterfactuals") or []
        for i, candidate in enumerate(found, start=1):
            changes = "; ".join(
                f"{c['feature']}: {c['from']} -> {c['to']}"
                for c in changes_in_words(schema, candidate.get("changes"))
            )
            _say(
                f"  {i}. {changes}: {class_in_words(schema, candidate.get('label'))}, "
                f"{score_in_words(schema, candidate.get('score'))}"
            )
        if result.get("shortfall_reason"):
            _say(f"  {result['shortfall_reason']}")
        elif not found:
            _say(f"  {result.get('message') or 'no flip found'}")
    else:
        _say(f"  {result.get('verdict')}: {result.get('message')}")
        for change in changes_in_words(schema, result.get("perturbation")):
            _say(f"  {change['feature']}: {change['from']} -> {change['to']}")


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
        int | None,
        typer.Option(
            min=1, help="No verdict rests on a smaller group (still shown and compared, marked)."
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(min=0, help="Seed of the Monte Carlo permutation test (default 0)."),
    ] = None,
) -> None:
    """Print the fairness report: by group, across groups, and by period with --window."""
    from core.db import make_engine, session_factory, transaction
    from core.errors import GovernanceError
    from explain.bulk import CLI
    from explain.fairness import service as fairness_service

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
                seed=seed,
            )
    except GovernanceError as exc:
        err.print(f"[bold red]error:[/] {exc.message}")
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    _print_report(report)


def _small(entry: dict[str, Any]) -> str:
    return " *" if entry.get("below_reporting_threshold") else ""


def _below(entry: dict[str, Any]) -> str:
    return " †" if entry.get("below_minimum_size") else ""


VERDICT_STYLE = {"holds": "green", "violated": "bold red", "not_assessable": "yellow"}


def _verdict(value: str | None) -> str:
    """The verdict's own word, coloured; never "holds" unless the verdict is holds."""
    if value is None:
        return "withheld"
    return f"[{VERDICT_STYLE.get(value, 'default')}]{value}[/]"


def _ratio(group: dict[str, Any], report: dict[str, Any]) -> str:
    ratio, ci = group.get("disparate_impact_ratio"), group.get("disparate_impact_ratio_ci95")
    if ratio is None:
        return "—"
    if group["group"] == report.get("most_favoured_group") and ci is None:
        return f"{ratio:.3f} (reference)"
    return f"{ratio:.3f}" + (f" ({ci[0]:.3f} to {ci[1]:.3f})" if ci else "")


def _print_verdict(title: str, verdict: str | None, reasons: list[str] | None) -> None:
    out.print(f"{title}: {_verdict(verdict)}")
    for reason in reasons or []:
        out.print(f"  - {reason}", highlight=False)


def _print_report(report: dict[str, Any]) -> None:
    title = (
        f"fairness on {report['endpoint']}: {report['n']} decisions, "
        f"{report['with_outcomes']} with outcomes; favourable = {report['favourable_label']}"
    )
    table = Table(title=title)
    for name in (
        "group",
        "n",
        "selection rate (95% CI)",
        "DI ratio (95% CI)",
        "four-fifths",
        "TPR",
        "FPR",
    ):
        table.add_column(
            name,
            justify="left" if name == "group" else "right",
            min_width=len("not_assessable") if name == "four-fifths" else None,
        )
    for group in report["groups"]:
        ci = group["selection_rate_ci95"]
        outcomes = group["outcomes"] or {}
        table.add_row(
            _group_name(group["group"]),
            f"{group['n']}{_below(group)}{_small(group)}",
            f"{_pct(group['selection_rate'])} ({_pct(ci[0])} to {_pct(ci[1])})" if ci else "—",
            _ratio(group, report),
            _verdict(group.get("four_fifths_verdict")),
            _pct(outcomes.get("true_positive_rate")),
            _pct(outcomes.get("false_positive_rate")),
        )
    out.print(table)
    _print_verdict("four-fifths rule", report["four_fifths_verdict"], report["verdict_reasons"])
    _print_verdict(
        "equal opportunity",
        report["equal_opportunity_verdict"],
        report["equal_opportunity_verdict_reasons"],
    )
    test = report.get("selection_rate_test") or {}
    drawn = f", seed {test['seed']}, {test['resamples']} resamples" if "seed" in test else ""
    out.print(
        f"demographic parity difference {_pct(report['demographic_parity_difference'])}; "
        f"equalized odds difference {_pct(report['equalized_odds_difference'])}"
        + (f"; {test['test']}: p = {test['p_value']:.3g}{drawn}" if test else "")
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
        trend.add_column("four-fifths", justify="right", min_width=len("not_assessable"))
        for period in report["trend"]:
            rates = {_group_name(g["group"]): g for g in period["groups"]}
            trend.add_row(
                period["period"],
                str(period["n"]),
                *[
                    "—"
                    if name not in rates
                    else _pct(rates[name]["selection_rate"])
                    + _below(rates[name])
                    + _small(rates[name])
                    for name in names
                ],
                "—"
                if period["disparate_impact_ratio_min"] is None
                else f"{period['disparate_impact_ratio_min']:.3f}",
                _verdict(period["four_fifths_verdict"]),
            )
        out.print(trend)
    if _any_below(report):
        out.print(
            f"† fewer than {report['min_group_size']} decisions: below the minimum group "
            "size; shown and compared, but no verdict rests on it"
        )
    if _any_small(report):
        out.print(
            f"* fewer than {report['reporting_threshold']} people (decisions, or validation "
            "rows at training): below the reporting threshold (GOV_MIN_CELL_SIZE); only "
            "compliance and admin may see such figures"
        )


def _any_below(report: dict[str, Any]) -> bool:
    groups = [*report["groups"], *(g for p in report.get("trend") or [] for g in p["groups"])]
    return any(g.get("below_minimum_size") for g in groups)


def _any_small(report: dict[str, Any]) -> bool:
    groups = [*report["groups"], *(g for p in report.get("trend") or [] for g in p["groups"])]
    groups += [
        entry
        for table in report["training"].values()
        if isinstance(table, dict)
        for entry in table.values()
    ]
    return any(g.get("below_reporting_threshold") for g in groups)
