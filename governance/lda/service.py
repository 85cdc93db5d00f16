"""The less discriminatory alternative search: every candidate of a space trained with full
lineage (each a training run and a registered version, with its seeds), on the executor (in
process, or on Ray with ``GOV_RAY_ADDRESS``), then compared on the same validation rows.

Each candidate's spec is the base version's recorded spec with the candidate's estimator
parameters set and its features left out, under its own model name (so no candidate is ever the
base model's next version). Its accuracy is its validation metric; its fairness the lowest
disparate-impact ratio between the groups of the protected attribute on its validation rows
(the same rows for every candidate: the split depends on the data and the split seed, which the
search never changes). The report: every point, the Pareto frontier, the alternatives to the base
within the declared loss of accuracy, and a chart. A person records which candidate was chosen
and why; that goes into the governance chain.
"""

from __future__ import annotations

import copy
import io
import logging
import time
import uuid
from concurrent.futures import Future, as_completed
from datetime import datetime
from typing import Any

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from core.audit import access
from core.auth.schemas import Principal
from core.config import Settings
from core.db import transaction, utcnow
from core.errors import Conflict, InvalidInput, NotFound
from explain.fairness import stats as fairness
from governance.changes import events
from governance.lda import frontier
from governance.lda.models import LdaSearch
from lineage import openlineage_events, registry
from lineage import service as lineage_service
from lineage.data_sources import DataPolicy
from lineage.executor import Executor
from lineage.runner import execute_run
from lineage.spec import parse_spec

log = logging.getLogger("govern.lda")

KIND = "search"
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


def _spec(
    base: dict[str, Any], candidate: frontier.Candidate, model: str, attribute: str
) -> dict[str, Any]:
    """The base's recorded spec with the candidate's parameters, treatment and reduction."""
    spec = copy.deepcopy(base)
    spec["model"] = model
    spec["estimator"] = {
        **spec["estimator"],
        "params": {**(spec["estimator"].get("params") or {}), **candidate.params},
    }
    spec["features"] = [f for f in spec["features"] if f["name"] not in candidate.dropped]
    transforms = spec.setdefault("transforms", {})
    overrides = transforms.setdefault("overrides", {})
    for name, bins in candidate.coarsened:
        # The feature's own transform (its override, or the numeric default), cut into bins.
        own = overrides.get(name) or transforms.get("numeric") or {}
        overrides[name] = {**own, "bins": bins}
    spec.pop("mitigation", None)
    if candidate.mitigation is not None:
        spec["mitigation"] = {**candidate.mitigation, "attribute": attribute}
    return spec


def _planned(entry: dict[str, Any]) -> frontier.Candidate:
    """A stored candidate as planned (searches from before coarsening and reductions too)."""
    return frontier.Candidate(
        entry["index"],
        entry["params"],
        tuple(entry["dropped"]),
        tuple(sorted((entry.get("coarsened") or {}).items())),
        entry.get("mitigation"),
    )


def create(
    session: Session,
    principal: Principal,
    body: dict[str, Any],
    executor_name: str,
    now: datetime,
) -> LdaSearch:
    """The search, its candidates planned and checked (every spec valid) before anything trains."""
    base = body["base"]
    _m, version = registry.get_version(session=session, name=base["model"], version=base["version"])
    spec = (version.lineage or {}).get("spec")
    if not spec:
        raise InvalidInput.at("base", "the version has no recorded spec to search from")
    names = {f["name"] for f in spec["features"]}
    attribute = body["attribute"]
    if attribute not in {p["name"] for p in spec.get("protected") or []}:
        raise InvalidInput.at(
            "attribute", f"{attribute!r} is not a protected attribute of the base"
        )
    for i, drop in enumerate(body["space"]["drop_features"]):
        unknown = sorted(set(drop) - names)
        if unknown:
            raise InvalidInput.at(
                f"space.drop_features.{i}", f"not features of the base: {unknown}"
            )
        if set(drop) >= names:
            raise InvalidInput.at(f"space.drop_features.{i}", "would leave no feature")
    numeric = {f["name"] for f in spec["features"] if f["type"] == "numeric"}
    for i, coarsen in enumerate(body["space"]["coarsen"]):
        wrong = sorted(set(coarsen) - numeric)
        if wrong:
            raise InvalidInput.at(
                f"space.coarsen.{i}", f"coarsening applies to numeric features of the base: {wrong}"
            )
    try:
        planned = frontier.grid(
            body["space"]["params"],
            body["space"]["drop_features"],
            body["max_candidates"],
            coarsen=body["space"]["coarsen"],
            reductions=body["space"]["reductions"],
        )
    except ValueError as exc:
        raise InvalidInput.at("space", str(exc)) from None
    model = body.get("candidate_model") or f"{base['model']}-lda"
    if model == base["model"]:
        raise InvalidInput.at("candidate_model", "must differ from the base model's name")
    candidates = []
    for c in planned:
        candidate_spec = _spec(spec, c, model, attribute)
        # Every spec checked now (422 naming the parameter), none trained yet.
        parse_spec(candidate_spec)
        candidates.append(
            {
                "index": c.index,
                "params": c.params,
                "dropped": list(c.dropped),
                "coarsened": dict(c.coarsened),
                "mitigation": c.mitigation,
                "status": "queued",
            }
        )
    search = LdaSearch(
        search_id=str(uuid.uuid4()),
        status=RUNNING,
        base_model=base["model"],
        base_version=base["version"],
        candidate_model=model,
        request=body,
        candidates=candidates,
        executor=executor_name,
        created_at=now,
        created_by=principal.key_id,
    )
    session.add(search)
    session.flush()
    events.record(
        session,
        principal,
        "search.started",
        kind=KIND,
        subject=search.search_id,
        at=now,
        detail={"request": body, "candidates": len(candidates)},
    )
    access.record(session, principal, "lda.create", target=search.search_id)
    return search


def run(
    sessions: sessionmaker[Session],
    settings: Settings,
    executor: Executor,
    search_id: str,
) -> None:
    """The job: every candidate queued as a training run and run on the executor; each one's
    figures recorded as it finishes (the progress); then the report."""
    started = time.perf_counter()
    events = openlineage_events.emitter_for(settings)
    ref = openlineage_events.JobRef("lda_search", search_id, "lda_search")
    inputs: list[dict[str, Any]] = []
    try:
        with transaction(sessions) as session:
            search = get(session, search_id)
            _m, version = registry.get_version(
                session=session, name=search.base_model, version=search.base_version
            )
            ref = openlineage_events.JobRef(
                "lda_search", search_id, f"lda_search.{search.base_model}", search.base_model
            )
            inputs = [version.lineage["dataset"]]
            base_spec = version.lineage["spec"]
            planned = [_planned(c) for c in search.candidates]
            runs: dict[int, int] = {}
            for c in planned:
                created = lineage_service.create_run(
                    session=session,
                    spec_data=_spec(
                        base_spec, c, search.candidate_model, search.request["attribute"]
                    ),
                    actor=search.created_by,
                    policy=DataPolicy.from_settings(settings),
                )
                assert created.id is not None
                runs[c.index] = created.id
            search.candidates = [
                {**c, "run_id": runs[c["index"]], "status": "training"} for c in search.candidates
            ]
            session.add(search)
        if events is not None:
            events.emit(ref, "START", inputs=inputs)
        futures: dict[Future[Any], int] = {
            executor.submit(execute_run, settings, run_id): index for index, run_id in runs.items()
        }
        for future in as_completed(futures):
            future.result()
            _record_candidate(sessions, search_id, futures[future], runs[futures[future]])
        with transaction(sessions) as session:
            search = get(session, search_id)
            _m, base = registry.get_version(
                session=session, name=search.base_model, version=search.base_version
            )
            search.report = _report(search, _figures(base.metrics, base.lineage, search.request))
            search.status, search.finished_at = SUCCEEDED, utcnow()
            search.report["elapsed_s"] = round(time.perf_counter() - started, 3)
            session.add(search)
            trained = [
                openlineage_events.model_record(
                    search.candidate_model,
                    registry.get_version(
                        session=session, name=search.candidate_model, version=c["version"]
                    )[1],
                )
                for c in search.candidates
                if c.get("version") is not None
            ]
        if events is not None:
            events.emit(ref, "COMPLETE", inputs=inputs, outputs=trained)
    except Exception as exc:
        log.exception("search %s failed", search_id)
        with transaction(sessions) as session:
            search = get(session, search_id)
            search.status, search.error, search.finished_at = FAILED, str(exc), utcnow()
            session.add(search)
        if events is not None:
            events.emit(ref, "FAIL", inputs=inputs, error=str(exc))


def _record_candidate(
    sessions: sessionmaker[Session], search_id: str, index: int, run_id: int
) -> None:
    with transaction(sessions) as session:
        search = get(session, search_id)
        public = lineage_service.run_public(
            session, lineage_service.get_run(session=session, run_id=run_id)
        )
        error = public.error.model_dump() if public.error is not None else None
        figures: dict[str, Any] = {"status": "failed", "error": error}
        if public.model_version is not None:
            _m, version = registry.get_version(
                session=session, name=search.candidate_model, version=public.model_version
            )
            figures = {"status": "trained", "version": public.model_version}
            figures.update(_figures(version.metrics, version.lineage, search.request))
        search.candidates = [
            {**c, **figures} if c["index"] == index else c for c in search.candidates
        ]
        search.done += 1
        session.add(search)


def _figures(
    metrics: dict[str, Any], lineage: dict[str, Any], request: dict[str, Any]
) -> dict[str, Any]:
    """A candidate's accuracy and fairness on its validation rows, with the four-fifths verdict
    by the fairness report's rules."""
    metric = request["accuracy_metric"]
    accuracy = (metrics.get("validation") or {}).get(metric)
    groups = (lineage.get("metrics_by_group") or {}).get(request["attribute"]) or {}
    counts = [
        fairness.GroupCounts(
            key=(name,), n=int(g["n"]), selected=round(float(g["selection_rate"]) * int(g["n"]))
        )
        for name, g in sorted(groups.items())
        if g.get("n") and g.get("selection_rate") is not None
    ]
    compared = fairness.compare(counts, [request["attribute"]], request["min_group_size"])
    return {
        "accuracy": accuracy,
        "fairness": compared["disparate_impact_ratio_min"],
        "fairness_ci95": compared["disparate_impact_ratio_min_ci95"],
        "four_fifths_verdict": compared["four_fifths_verdict"],
        "validation_rows": sum(c.n for c in counts),
        "selection_rates": {c.key[0]: c.selected / c.n for c in counts if c.n},
    }


def _report(search: LdaSearch, base: dict[str, Any]) -> dict[str, Any]:
    """The frontier over the trained candidates, and the alternatives to the base version
    itself (its own validation figures)."""
    trained = [
        c
        for c in search.candidates
        if c.get("status") == "trained"
        and c.get("accuracy") is not None
        and c.get("fairness") is not None
    ]
    points = [
        frontier.Point(str(c["index"]), float(c["accuracy"]), float(c["fairness"])) for c in trained
    ]
    loss = float(search.request["max_accuracy_loss"])
    alternatives: list[int] = []
    if base.get("accuracy") is not None and base.get("fairness") is not None:
        reference = frontier.Point("base", float(base["accuracy"]), float(base["fairness"]))
        alternatives = [int(k) for k in frontier.less_discriminatory(reference, points, loss)]
    return {
        "candidates": len(search.candidates),
        "trained": len(trained),
        "base": {"model": search.base_model, "version": search.base_version, **base},
        "pareto": [int(k) for k in frontier.pareto(points)],
        "less_discriminatory": alternatives,
        "max_accuracy_loss": loss,
        "accuracy_metric": search.request["accuracy_metric"],
        "fairness_metric": f"lowest disparate-impact ratio by {search.request['attribute']} on the "
        "validation rows",
    }


def get(session: Session, search_id: str) -> LdaSearch:
    found = session.exec(select(LdaSearch).where(LdaSearch.search_id == search_id)).first()
    if found is None:
        raise NotFound(f"no search {search_id}")
    return found


def public(session: Session, search: LdaSearch) -> dict[str, Any]:
    return {
        "search_id": search.search_id,
        "status": search.status,
        "base": {"model": search.base_model, "version": search.base_version},
        "candidate_model": search.candidate_model,
        "request": search.request,
        "progress": {"done": search.done, "total": len(search.candidates)},
        "candidates": search.candidates,
        "report": search.report,
        "error": search.error,
        "executor": search.executor,
        "created_at": search.created_at,
        "created_by": search.created_by,
        "finished_at": search.finished_at,
        "chosen": search.chosen,
        "history": events.steps(session, KIND, search.search_id),
    }


def read(session: Session, search_id: str, principal: Principal) -> dict[str, Any]:
    search = get(session, search_id)
    access.record(session, principal, "lda.read", target=search_id)
    return public(session, search)


def choose(
    session: Session,
    search_id: str,
    index: int,
    rationale: str,
    principal: Principal,
    now: datetime,
) -> LdaSearch:
    """The written record of which candidate was chosen and why, by whom: in the chain."""
    search = get(session, search_id)
    if search.status != SUCCEEDED:
        raise Conflict(f"the search is {search.status}: choose once it has succeeded")
    found = next((c for c in search.candidates if c["index"] == index), None)
    if found is None or found.get("status") != "trained":
        raise InvalidInput.at("candidate", f"no trained candidate {index}")
    report = search.report or {}
    search.chosen = {
        "candidate": index,
        "model": search.candidate_model,
        "version": found["version"],
        "rationale": rationale,
        "by": principal.key_id,
        "at": now.isoformat(),
        "on_frontier": index in report.get("pareto", []),
        "less_discriminatory": index in report.get("less_discriminatory", []),
    }
    session.add(search)
    events.record(
        session,
        principal,
        "search.chosen",
        kind=KIND,
        subject=search_id,
        at=now,
        detail=search.chosen,
    )
    return search


def chart(search: LdaSearch) -> bytes:
    """The frontier as a PNG: every candidate, the frontier joined, the alternatives ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [
        c
        for c in search.candidates
        if c.get("accuracy") is not None and c.get("fairness") is not None
    ]
    if not trained:
        raise Conflict("no candidate has been trained yet: nothing to draw")
    report = search.report or {}
    pareto = set(report.get("pareto", []))
    lda = set(report.get("less_discriminatory", []))
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    axes.scatter(
        [c["accuracy"] for c in trained],
        [c["fairness"] for c in trained],
        color="#888",
        label="candidate",
    )
    front = sorted((c for c in trained if c["index"] in pareto), key=lambda c: c["accuracy"])
    axes.plot(
        [c["accuracy"] for c in front],
        [c["fairness"] for c in front],
        color="#1f5fa8",
        marker="o",
        label="Pareto frontier",
    )
    ringed = [c for c in trained if c["index"] in lda]
    axes.scatter(
        [c["accuracy"] for c in ringed],
        [c["fairness"] for c in ringed],
        s=160,
        facecolors="none",
        edgecolors="#1a7f37",
        linewidths=2,
        label="less discriminatory",
    )
    base = next((c for c in trained if c["index"] == 0), None)
    if base is not None:
        axes.scatter(
            [base["accuracy"]], [base["fairness"]], marker="s", color="#b42318", label="base"
        )
    axes.axhline(0.8, color="#b42318", linestyle=":", linewidth=1)
    axes.set_xlabel(f"validation {search.request['accuracy_metric']}")
    axes.set_ylabel(f"lowest disparate-impact ratio by {search.request['attribute']}")
    axes.set_title(f"{len(trained)} candidates from {search.base_model} v{search.base_version}")
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def listing(
    session: Session, principal: Principal, limit: int, cursor: int | None
) -> list[LdaSearch]:
    query = select(LdaSearch).order_by(col(LdaSearch.id).desc()).limit(limit)
    if cursor is not None:
        query = query.where(col(LdaSearch.id) < cursor)
    rows = list(session.exec(query).all())
    access.record(session, principal, "lda.list", rows=len(rows))
    return rows
