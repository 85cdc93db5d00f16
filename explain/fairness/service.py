"""The fairness report: validate the query, count in the database, compare, and put the live
figures beside the ones recorded at training time.

Every group is in the comparison, however small (``below_minimum_size`` marks those under the
minimum); the verdicts (``holds``, ``violated``, ``not_assessable``) and their reasons follow
the rule of ``explain.fairness.stats``, stated in the report's ``verdict_rule``. The Monte Carlo
permutation test, when one is needed, draws from ``seed`` (default 0, recorded in the report
with the number of resamples): the same request gives the same answer."""

from __future__ import annotations

import itertools
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from core import cells
from core.audit import access
from core.auth.schemas import Principal
from core.config import Settings
from core.errors import InvalidInput, NotFound
from explain.fairness import stats as fairness
from explain.fairness.query import (
    CONTEXT,
    FEATURES,
    OVERTURNED,
    Attribute,
    Filters,
    Span,
    overturned_to,
    run_counts,
    totals,
)
from explain.fairness.tally import tallies_of
from lineage import registry
from lineage.input_schema import InputSchema, ProtectedEntry
from lineage.models import ModelVersion
from serving.endpoints import endpoint_row
from serving.models import Endpoint, EndpointConfig
from serving.schemas import EndpointConfigDocument

MAX_ATTRIBUTES = 3
DEFAULT_REPORTING_THRESHOLD: int = Settings.model_fields["min_cell_size"].default


def parse_bins(values: list[str]) -> dict[str, tuple[float, ...]]:
    """``age:18,25,40,60,120`` (repeatable) -> {"age": (18, 25, 40, 60, 120)}."""
    result: dict[str, tuple[float, ...]] = {}
    for value in values:
        name, sep, edges = value.partition(":")
        try:
            numbers = tuple(float(e) for e in edges.split(","))
        except ValueError:
            numbers = ()
        if not sep or not name or len(numbers) < 2:
            raise InvalidInput.at(
                "bins", f"{value!r}: expected attribute:edge,edge,... (two or more)"
            )
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise InvalidInput.at("bins", f"{value!r}: edges must be strictly increasing")
        result[name] = numbers
    return result


def versions_in_scope(
    session: Session, endpoint: Endpoint, model: str | None, version: int | None
) -> list[tuple[str, ModelVersion]]:
    if version is not None and model is None:
        raise InvalidInput.at("version", "give model too")
    if model is not None:
        try:
            registered = registry.get_model(session=session, name=model)
        except NotFound:
            raise InvalidInput.at("model", f"no model named {model!r}") from None
        if version is not None:
            try:
                _m, found = registry.get_version(session=session, name=model, version=version)
            except NotFound:
                raise InvalidInput.at("version", f"{model} has no version {version}") from None
            return [(model, found)]
        versions = session.exec(
            select(ModelVersion).where(ModelVersion.model_id == registered.id)
        ).all()
        return [(model, v) for v in versions]
    configs = session.exec(
        select(EndpointConfig.config).where(EndpointConfig.endpoint_id == endpoint.id)
    ).all()
    targets = sorted({t for c in configs for t in EndpointConfigDocument.of(c).targets()})
    scoped = []
    for name, number in targets:
        _m, found = registry.get_version(session=session, name=name, version=number)
        scoped.append((name, found))
    return scoped


def _favourable(scoped: list[tuple[str, ModelVersion]]) -> str:
    labels = set()
    for _name, version in scoped:
        labels.add(str(InputSchema.from_document(version.input_schema).favourable))
    if len(labels) != 1:
        raise InvalidInput.at(
            "model",
            f"the endpoint's models disagree on the favourable class {sorted(labels)}; "
            "filter by model",
        )
    return labels.pop()


def _attributes(
    scoped: list[tuple[str, ModelVersion]], names: list[str], bins: dict[str, tuple[float, ...]]
) -> list[Attribute]:
    if not names:
        raise InvalidInput.at("attribute", "give at least one protected attribute")
    if len(names) > MAX_ATTRIBUTES:
        raise InvalidInput.at("attribute", f"at most {MAX_ATTRIBUTES} at once")
    if len(set(names)) != len(names):
        raise InvalidInput.at("attribute", "each attribute once")
    declared: dict[str, ProtectedEntry] = {}
    sources: dict[str, set[str]] = {}
    for _name, version in scoped:
        for protected in InputSchema.from_document(version.input_schema).protected:
            declared.setdefault(protected.name, protected)
            source = FEATURES if protected.feature else CONTEXT
            sources.setdefault(protected.name, set()).add(source)
    for name in bins:
        if name not in names:
            raise InvalidInput.at("bins", f"{name!r} is not one of the attributes asked for")
    result = []
    for name in names:
        if name not in declared:
            raise InvalidInput.at(
                "attribute",
                f"{name!r} is not a protected attribute of this endpoint's models; "
                f"known: {sorted(declared)}",
            )
        spec = declared[name]
        edges = bins.get(name) or (tuple(spec.bins) if spec.bins else None)
        if spec.type == "numeric" and not edges:
            raise InvalidInput.at(
                "bins", f"{name!r} is numeric: give bins, e.g. {name}:18,25,40,60,120"
            )
        if len(sources[name]) > 1:
            raise InvalidInput.at(
                "attribute",
                f"{name!r} is a model feature for some of this endpoint's models and a context "
                "attribute for others; filter by model",
            )
        result.append(Attribute(name=name, bins=edges, source=sources[name].pop()))
    return result


def _training(
    scoped: list[tuple[str, ModelVersion]], attributes: list[Attribute], threshold: int
) -> dict[str, Any]:
    """Validation-set figures by group recorded in each version's lineage (one attribute)."""
    if len(attributes) != 1:
        return {"note": "recorded per single attribute only; ask for one attribute to compare"}
    name = attributes[0].name
    result: dict[str, Any] = {}
    for model, version in scoped:
        groups = (version.lineage or {}).get("metrics_by_group", {}).get(name)
        if groups:
            figures = {
                group: {
                    "n": entry.get("n"),
                    "selection_rate": entry.get("selection_rate"),
                    "true_positive_rate": entry.get("true_positive_rate"),
                    "false_positive_rate": entry.get("false_positive_rate"),
                }
                for group, entry in groups.items()
            }
            result[f"{model} v{version.version}"] = cells.mark_group_table(figures, threshold)
    return result


def _compare(
    groups: list[fairness.GroupCounts],
    names: list[str],
    min_group_size: int,
    threshold: int,
    seed: int,
) -> dict[str, Any]:
    """The comparison, with each group marked when it is below the reporting threshold (the
    verdicts are computed exactly as without the marks)."""
    compared = fairness.compare(groups, names, min_group_size, seed=seed)
    compared["groups"] = cells.mark_group_list(compared["groups"], threshold)
    return compared


def version_report(
    session: Session,
    principal: Principal,
    settings: Settings,
    *,
    endpoint: str,
    model: str | None,
    version: int | None,
    attributes: list[str],
) -> dict[str, Any]:
    """The whole-history report of one model version's decisions on an endpoint, with the
    configured sizes: what the model card and the dossier show."""
    return report(
        session,
        principal,
        endpoint=endpoint,
        attributes=attributes,
        bins=[],
        since=None,
        until=None,
        model=model,
        version=version,
        route=None,
        window=None,
        min_group_size=settings.fairness_min_group_size,
        min_cell_size=settings.min_cell_size,
    )


def report(
    session: Session,
    principal: Principal,
    *,
    endpoint: str,
    attributes: list[str],
    bins: list[str],
    since: datetime | None,
    until: datetime | None,
    model: str | None,
    version: int | None,
    route: str | None,
    window: str | None,
    min_group_size: int,
    min_cell_size: int = DEFAULT_REPORTING_THRESHOLD,
    seed: int | None = None,
) -> dict[str, Any]:
    """The full report, for compliance: small groups are kept, and each one below
    ``min_cell_size`` (the reporting threshold) is marked; see ``core.cells`` for what
    other roles get."""
    found = endpoint_row(session, endpoint)
    if since is not None and until is not None and since >= until:
        raise InvalidInput.at("since", "must be before until")
    scoped = versions_in_scope(session, found, model, version)
    if not scoped:
        raise InvalidInput.at("endpoint", "the endpoint has served no model")
    favourable = _favourable(scoped)
    attrs = _attributes(scoped, attributes, parse_bins(bins))
    filters = Filters(
        endpoint=endpoint, since=since, until=until, model=model, version=version, route=route
    )
    names = [a.name for a in attrs]
    seed = fairness.DEFAULT_SEED if seed is None else seed
    connection = session.connection()
    # With a window, one query by period; the whole window is the sum of its periods.
    periods, marks = tallies_of(connection.engine).counts(
        connection, filters, attrs, favourable, window
    )
    overall = periods.get(None, []) if not window else totals(periods)
    # Counted up to the same place in the log as the automated figures.
    span = Span(upto=marks.seq, outcomes_upto=marks.outcome)
    overturned = run_counts(
        connection, filters, attrs, favourable, None, span, only=OVERTURNED
    ).get(None, [])
    made_favourable = run_counts(
        connection, filters, attrs, favourable, None, span, only=overturned_to(favourable)
    ).get(None, [])
    body: dict[str, Any] = {
        "endpoint": endpoint,
        "filters": {k: v for k, v in asdict(filters).items() if k != "endpoint"},
        "attributes": [
            {"name": a.name, "bins": list(a.bins) if a.bins else None, "source": a.source}
            for a in attrs
        ],
        "favourable_label": favourable,
        "min_group_size": min_group_size,
        "reporting_threshold": min_cell_size,
        "counted_to": marks.public(),
        "n": sum(g.n for g in overall),
        "with_outcomes": sum(g.with_outcome for g in overall),
        "verdict_rule": fairness.verdict_rule(min_group_size),
        "seed": seed,
        "resamples": fairness.RESAMPLES,
        **_compare(overall, names, min_group_size, min_cell_size, seed),
        "training": _training(scoped, attrs, min_cell_size),
        "models": [f"{m} v{v.version}" for m, v in scoped],
        "human_overturns": {
            "decisions": sum(g.n for g in overturned),
            "by_group": [
                {"group": dict(zip(names, g.key, strict=True)), "overturned": g.n}
                for g in overturned
            ],
            "note": "every figure above counts the automated decisions as logged; these of them "
            "a person overturned on appeal (GET /api/v1/appeals/oversight)",
            "final_decisions": _compare(
                fairness.final_counts(overall, overturned, made_favourable),
                names,
                min_group_size,
                min_cell_size,
                seed,
            )
            if overturned
            else None,
        },
    }
    if window:
        body["window"] = window
        body["trend"] = [
            {
                "period": period,
                "n": sum(g.n for g in groups),
                **_compare(groups, names, min_group_size, min_cell_size, seed),
            }
            for period, groups in periods.items()
        ]
    access.record(
        session,
        principal,
        "fairness.report",
        target=endpoint,
        params={
            "attribute": attributes,
            "bins": bins,
            "since": str(since) if since else None,
            "until": str(until) if until else None,
            "model": model,
            "version": version,
            "route": route,
            "window": window,
            "min_group_size": min_group_size,
            "seed": seed,
        },
        rows=int(body["n"]),
    )
    return body
