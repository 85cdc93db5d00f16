"""The model card: what a version is for, what it was trained on, how it performs, by group and
live, whether it passed its gate, where it came from, and whether it rebuilds.

Data scientists read it too: its figures by group follow ``core.cells`` (small cells
withheld for them, marked for compliance and admin); a withheld row carries ``fewer_than``, the
reporting threshold it is below.

Besides the recorded figures it says:

* ``overfitting``: the training ROC AUC against the validation ROC AUC; ``flagged`` when the
  training figure is higher by more than ``OVERFITTING_AUC_GAP`` (0.05, absolute). A gap that
  large means the model fits the rows it learned from noticeably better than new ones, so the
  validation figures are the ones to trust. A model without both figures (one trained elsewhere
  is scored on all its rows) is not assessed (``flagged`` null), and the card says why;
* ``live_fairness``: the endpoints' decisions of this version by every protected attribute
  together (their intersection), and ``live_fairness_by_attribute``: by each one on its own;
* ``owner_detail``: who registered the version, by the name of the API key whose id is
  recorded (``owner`` stays the recorded id); a version trained with ``govern train`` records
  only "cli", and the card says that no user was recorded;
* ``proxies``: the proxy report's sentences ("marital_status predicts sex with AUC 0.98"), for
  every role with names and AUCs only (the groups and their sizes stay in the lineage, for
  compliance and admin);
* for each feature, ``also_protected`` with the spec's ``protected_justification`` when a
  protected attribute is also a model input, and ``missing_value_policy`` in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from core import cells
from core.auth.models import ApiKey
from core.auth.schemas import Principal
from core.config import Settings
from core.errors import GovernanceError
from explain.fairness import service as fairness_service
from governance.compliance.dossier import decision_words, threshold_rule
from governance.compliance.inventory import last_rebuild
from lineage import registry
from lineage.input_schema import FeatureEntry, InputSchema
from lineage.models import ModelVersion, RegisteredModel
from serving.models import DecisionRecord

DECISIONS: sa.Table = DecisionRecord.__table__  # type: ignore[attr-defined]
OVERFITTING_AUC_GAP = 0.05
# Fewer validation rows of either class than this, and the validation ROC AUC is too uncertain
# for its gap to the training figure to mean anything: no verdict either way.
OVERFITTING_MIN_CLASS_ROWS = 20
CLI_ACTOR = "cli"
IMPUTED_WITH = {
    "median": "the training median",
    "mean": "the training mean",
    "most_frequent": "the most frequent training value",
    "constant": "the constant",
}


def overfitting(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """Training against validation ROC AUC, flagged beyond ``OVERFITTING_AUC_GAP``."""
    rule = (
        "flagged when the training ROC AUC exceeds the validation ROC AUC by more than "
        f"{OVERFITTING_AUC_GAP} (absolute)"
    )

    def auc(split: str) -> float | None:
        figures = (metrics or {}).get(split)
        value = figures.get("roc_auc") if isinstance(figures, Mapping) else None
        return float(value) if isinstance(value, int | float) else None

    train, validation = auc("train"), auc("validation")
    result: dict[str, Any] = {
        "train_auc": train,
        "validation_auc": validation,
        "gap": None,
        "threshold": OVERFITTING_AUC_GAP,
        "flagged": None,
        "rule": rule,
    }
    if train is None or validation is None:
        result["text"] = (
            "Overfitting not assessed: this version has no separate training and validation "
            "ROC AUC (a model trained elsewhere is scored on all its rows)."
        )
        return result
    smaller = _smaller_class_rows((metrics or {}).get("validation"))
    if smaller is not None and smaller < OVERFITTING_MIN_CLASS_ROWS:
        result["text"] = (
            f"Overfitting not assessed: the validation set has {smaller} rows of its smaller "
            f"class, fewer than {OVERFITTING_MIN_CLASS_ROWS}; its ROC AUC ({validation:.4f}) is "
            "too uncertain to compare with the training figure."
        )
        return result
    gap = train - validation
    # Rounded first: 0.80 - 0.75 is 0.05000000000000004 in floating point, not beyond 0.05.
    flagged = round(gap, 10) > OVERFITTING_AUC_GAP
    result.update(gap=gap, flagged=flagged)
    result["text"] = (
        f"Training ROC AUC {train:.4f} against validation {validation:.4f}: a gap of {gap:.4f}, "
        + (
            f"more than the {OVERFITTING_AUC_GAP} allowed. Flagged as overfitting: the model fits "
            "its training rows better than new ones; trust the validation figures."
            if flagged
            else f"within the {OVERFITTING_AUC_GAP} allowed."
        )
    )
    return result


def _smaller_class_rows(figures: Any) -> int | None:
    """Rows of the rarer class in a split, from its recorded ``n`` and ``positive_rate``."""
    if not isinstance(figures, Mapping):
        return None
    n, rate = figures.get("n"), figures.get("positive_rate")
    if not isinstance(n, int) or not isinstance(rate, int | float):
        return None
    positives = round(n * rate)
    return min(positives, n - positives)


def owner_detail(session: Session, recorded: str) -> dict[str, Any]:
    """Who registered the version: the API key's name for a recorded key id."""
    key = session.exec(select(ApiKey).where(ApiKey.key_id == recorded)).first()
    if key is not None:
        return {
            "recorded": recorded,
            "kind": "api_key",
            "name": key.name,
            "role": key.role,
            "text": f"{key.name} (API key {recorded}, role {key.role})",
        }
    if recorded == CLI_ACTOR:
        return {
            "recorded": recorded,
            "kind": "command_line",
            "name": None,
            "role": None,
            "text": "the command line (govern train); no user was recorded",
        }
    return {
        "recorded": recorded,
        "kind": "unknown",
        "name": None,
        "role": None,
        "text": f"{recorded} (not the id of an API key of this service; shown as recorded)",
    }


def _fill_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:g}"
    return f'"{value}"'


def missing_value_policy(feature: FeatureEntry) -> str | None:
    """In words: how many training rows lacked the feature, whether predict accepts null, and
    what the fitted model puts in its place. None when nothing was recorded."""
    if not feature.missing_recorded:
        return None
    parts = []
    count = feature.missing_in_training
    if count is not None:
        parts.append(f"{count} missing in training" if count else "none missing in training")
    parts.append("null accepted at predict" if feature.nullable else "null refused at predict")
    policy = feature.missing
    impute = None if policy is None else policy.impute
    if impute == "none":
        parts.append("the estimator receives the gap itself")
    elif impute == "own_bin":
        parts.append("a scorecard bin of its own, with its own points")
    elif policy is not None and impute:
        filled = f"filled with {IMPUTED_WITH.get(impute, impute)}"
        if policy.fill_value is not None:
            filled += f" {_fill_text(policy.fill_value)}"
        parts.append(filled)
    else:
        parts.append("imputation not recorded")
    return "; ".join(parts)


def _features(schema: InputSchema) -> list[dict[str, Any]]:
    also = {p.name: p for p in schema.protected if p.feature}
    return [
        {
            **feature.document(),
            "also_protected": feature.name in also,
            "protected_justification": also[feature.name].justification
            if feature.name in also
            else None,
            "missing_value_policy": missing_value_policy(feature),
        }
        for feature in schema.features
    ]


def decision_rule(schema: InputSchema) -> dict[str, Any]:
    rule = threshold_rule(schema)
    positive = schema.positive_class
    target = schema.target or "the target"
    return {
        "threshold": rule["threshold"],
        "rule": rule["rule"],
        "positive_class": positive,
        "favourable_class": schema.favourable,
        "decision_words": decision_words(schema),
        "text": f"{rule['rule']}; the score is the model's probability that {target} = {positive}",
    }


def proxies(lineage: Mapping[str, Any], principal: Principal) -> dict[str, Any] | None:
    """The proxy report's sentences, with names and AUCs only."""
    report = lineage.get("proxies")
    if not isinstance(report, Mapping):
        return None
    shown = cells.without_group_counts(report)
    attributes = report.get("attributes") or {}
    top = []
    score = []
    not_assessable = []
    for attribute, entry in shown.get("attributes", {}).items():
        if attributes.get(attribute, {}).get("status") != "assessed":
            not_assessable.append(attribute)
            continue
        named = set(entry.get("top_proxies") or [])
        top += [
            {"attribute": attribute, "feature": f["feature"], "auc": f.get("auc")}
            for f in entry.get("features") or []
            if f.get("feature") in named
        ]
        if isinstance(entry.get("score"), Mapping):
            score.append({"attribute": attribute, "auc": entry["score"].get("auc")})
    summary = list(
        report.get("summary") or []
        if cells.sees_every_cell(principal.role)
        else [
            *shown.get("summary", []),
            *(f"{name}: proxies not assessable" for name in not_assessable),
        ]
    )
    return {
        "threshold": report.get("threshold"),
        "summary": summary,
        "top_proxies": top,
        "score": score,
        "not_assessable": not_assessable,
        "seed": report.get("seed"),
    }


def _with_fewer_than(rows: list[dict[str, Any]], threshold: int) -> list[dict[str, Any]]:
    """Each withheld row says what it is below: ``fewer_than`` the reporting threshold."""
    marked = []
    for given in rows:
        row = {**given, "fewer_than": threshold} if given.get("suppressed") else dict(given)
        outcomes = row.get("outcomes")
        if isinstance(outcomes, Mapping) and outcomes.get("suppressed"):
            row["outcomes"] = {**outcomes, "fewer_than": threshold}
        marked.append(row)
    return marked


def _report(
    session: Session,
    principal: Principal,
    settings: Settings,
    model: RegisteredModel,
    version: ModelVersion,
    endpoint: str,
    attributes: list[str],
) -> dict[str, Any]:
    try:
        report = fairness_service.version_report(
            session,
            principal,
            settings,
            endpoint=endpoint,
            model=model.name,
            version=version.version,
            attributes=attributes,
        )
    except GovernanceError as exc:
        return {
            "endpoint": endpoint,
            "attributes": [{"name": name} for name in attributes],
            "not_computed": exc.message,
            "groups": [],
        }
    # The card shows live fairness; overturns on appeal are on the fairness report itself.
    live = {k: v for k, v in report.items() if k not in {"training", "filters", "human_overturns"}}
    shown = cells.fairness_report_for(principal.role, live, settings.min_cell_size)
    shown["groups"] = _with_fewer_than(shown.get("groups") or [], settings.min_cell_size)
    return shown


def _live_fairness(
    session: Session,
    principal: Principal,
    settings: Settings,
    model: RegisteredModel,
    version: ModelVersion,
    schema: InputSchema,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """By every protected attribute together, and by each on its own, per endpoint."""
    protected = schema.protected_names
    if not protected:
        return [], []
    endpoints = session.execute(
        sa.select(DECISIONS.c.endpoint)
        .where(
            DECISIONS.c.kind == "decision",
            DECISIONS.c.model == model.name,
            DECISIONS.c.version == version.version,
        )
        .distinct()
        .order_by(DECISIONS.c.endpoint)
    ).scalars()
    together, alone = [], []
    for endpoint in endpoints:
        report = _report(session, principal, settings, model, version, endpoint, protected)
        together.append(report)
        if len(protected) == 1:
            alone.append({**report, "attribute": protected[0]})
            continue
        for name in protected:
            single = _report(session, principal, settings, model, version, endpoint, [name])
            alone.append({**single, "attribute": name})
    return together, alone


def card(
    session: Session,
    principal: Principal,
    settings: Settings,
    model: RegisteredModel,
    version: ModelVersion,
) -> dict[str, Any]:
    lineage = version.lineage
    spec = lineage.get("spec") or {}
    data = lineage.get("dataset") or {}
    schema = InputSchema.from_document(version.input_schema)
    together, alone = _live_fairness(session, principal, settings, model, version, schema)
    by_group = cells.metrics_by_group_for(
        principal.role, lineage.get("metrics_by_group") or {}, settings.min_cell_size
    )
    return {
        "model": model.name,
        "version": version.version,
        "description": spec.get("description") or model.description,
        "intended_use": spec.get("intended_use"),
        "owner": version.created_by,
        "owner_detail": owner_detail(session, version.created_by),
        "stage": registry.current_stage(session, version).value,
        "created_at": version.created_at.isoformat(),
        "data": {
            k: data.get(k)
            for k in ("name", "version", "repo", "path", "commit", "md5", "sha256", "row_count")
        },
        "features": _features(schema),
        "protected": [p.document() for p in schema.protected],
        "proxies": proxies(lineage, principal),
        "missing_values": lineage.get("missing_values"),
        "target": schema.target,
        "threshold": schema.threshold,
        "decision_rule": decision_rule(schema),
        "metrics": version.metrics,
        "overfitting": overfitting(version.metrics),
        "reporting_threshold": settings.min_cell_size,
        "metrics_by_group": {
            attribute: dict(
                zip(
                    table,
                    _with_fewer_than(list(table.values()), settings.min_cell_size),
                    strict=True,
                )
            )
            if isinstance(table, Mapping)
            else table
            for attribute, table in by_group.items()
        },
        "live_fairness": together,
        "live_fairness_by_attribute": alone,
        "scorecard": schema.scorecard.model_dump() if schema.scorecard else None,
        "gate": lineage.get("gate"),
        "lineage": registry.lineage_summary(session, version),
        "rebuild": last_rebuild(session, version),
    }
