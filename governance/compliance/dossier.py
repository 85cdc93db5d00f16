"""One document about one decision, for an appeal or an examiner: JSON, or HTML to hand over.

It holds the decision record (its whole context only for compliance and admin; other roles see
the keys declared public, never a protected attribute), the decision in words, the model version
with its lineage and its latest rebuild verdict, the recorded outcome, the adverse-action reason
codes, the SHAP attributions, a counterfactual, the anchor rule and the robustness assessment
when they were computed before, the replay of the logged input on the same model (scored again,
never logged as a decision), the live fairness verdicts of the decision's model version on its
endpoint (for compliance and admin; withheld for other roles), and the verification of this
record's place in the hash chain. Explanations come from storage when they were computed
before, so the same dossier says the same thing each time it is fetched.

The decision in words (``in_words``): the favourable class is "approved" and the other "denied"
(``decision_words``; a schema's ``decision_words`` would name them otherwise), the class label
beside it; the score and the threshold rounded for reading to the fewest digits (at least two)
that keep them on the same sides of each other as the exact values, which stay in the JSON;
the outlier score with the detector's threshold; each feature value with its label and code, a
missing value as "missing".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.audit import access
from core.audit.chain import GENESIS, content_hash, record_hash
from core.audit.models import AuditCheckpoint
from core.auth.schemas import Principal
from core.cells import sees_every_cell
from core.config import Settings
from core.errors import GovernanceError
from explain import service as explain_service
from explain.fairness import service as fairness_service
from explain.models import Explanation
from governance.compliance.inventory import last_rebuild
from lineage import registry
from lineage.input_schema import InputSchema, feature_label
from lineage.models import ModelVersion
from serving import lookups
from serving.decision_log import CHAIN
from serving.models import DecisionOutcome, DecisionRecord
from serving.state import Serving

DECISIONS: sa.Table = DecisionRecord.__table__  # type: ignore[attr-defined]
DECISION_WORDS = {"favourable": "approved", "unfavourable": "denied"}
# Digits a score or threshold is first shown with; more only when needed to keep the sides.
SCORE_DIGITS = 2
OUTLIER_DIGITS = 1
MOST_DIGITS = 8
ANCHOR_FIELDS = (
    "rule",
    "label",
    "precision",
    "precision_lower_bound",
    "bound",
    "coverage",
    "coverage_rows",
    "min_support",
    "threshold",
    "meets_threshold",
    "reliable",
    "explained_row_in_training",
    "message",
    "source",
    "seed",
    "method",
)
ROBUSTNESS_FIELDS = (
    "verdict",
    "message",
    "label",
    "distance",
    "distance_units",
    "perturbation",
    "flips_on_replay",
    "replay",
    "found_by",
    "threshold",
    "changeable",
    "searched",
    "seed",
    "method",
)
FAIRNESS_GROUP_FIELDS = (
    "group",
    "n",
    "selection_rate",
    "selection_rate_ci95",
    "disparate_impact_ratio",
    "disparate_impact_ratio_ci95",
    "four_fifths_verdict",
    "below_minimum_size",
    "below_reporting_threshold",
)
FAIRNESS_FIELDS = (
    "n",
    "favourable_label",
    "min_group_size",
    "four_fifths_verdict",
    "verdict_reasons",
    "most_favoured_group",
    "disparate_impact_ratio_min",
    "disparate_impact_ratio_min_ci95",
    "equal_opportunity_verdict",
    "equal_opportunity_verdict_reasons",
)


# The decision in words: pure functions of the schema and the logged values ---------------------


def decision_words(schema: InputSchema) -> dict[str, str]:
    """The words for the two classes: the favourable one and the other."""
    named = schema.decision_words or {}
    words = {k: str(named.get(k) or default) for k, default in DECISION_WORDS.items()}
    return {**words, "source": "spec" if named else "default"}


def rounded_pair(
    value: float, threshold: float, *, at_or_above: bool, digits: int
) -> tuple[str, str]:
    """``value`` and ``threshold`` as text, with the fewest decimals (at least ``digits``) at which
    the rounded numbers compare as the exact ones do (``>=``, or ``>`` when not
    ``at_or_above``): a score of 0.4996 under a threshold of 0.5 never reads "0.50"."""

    def side(a: float, b: float) -> bool:
        return a >= b if at_or_above else a > b

    exact = side(value, threshold)
    for places in range(digits, MOST_DIGITS + 1):
        shown, bar = f"{value:.{places}f}", f"{threshold:.{places}f}"
        if side(float(shown), float(bar)) == exact:
            return shown, bar
    return repr(float(value)), repr(float(threshold))


def is_favourable(schema: InputSchema, label: Any) -> bool | None:
    return schema.is_favourable(label)


def threshold_rule(schema: InputSchema, score: float | None = None) -> dict[str, Any]:
    """How the score becomes a decision: the positive class at or above the threshold."""
    threshold = schema.threshold
    words = decision_words(schema)
    favourable_is_positive = schema.is_favourable(schema.positive_class) is not False
    shown, bar = (
        rounded_pair(score, threshold, at_or_above=True, digits=SCORE_DIGITS)
        if score is not None
        else (None, f"{threshold:.{SCORE_DIGITS}f}")
    )
    rule = (
        f"{words['favourable']} at {bar} or above"
        if favourable_is_positive
        else f"{words['favourable']} below {bar}"
    )
    return {"threshold": threshold, "rule": rule, "score_shown": shown, "threshold_shown": bar}


def outlier_in_words(
    score: float | None, is_outlier: bool | None, threshold: float | None
) -> dict[str, Any]:
    if score is None:
        text = "no outlier score: this model version has no out-of-distribution detector"
    else:
        verdict = (
            "outside the training distribution (an outlier)"
            if is_outlier
            else "within the training distribution"
        )
        if threshold is None:
            text = f"outlier score {score:.{OUTLIER_DIGITS}f}: {verdict}"
        else:
            shown, bar = rounded_pair(
                float(score), float(threshold), at_or_above=False, digits=OUTLIER_DIGITS
            )
            text = f"outlier score {shown} (threshold {bar}): {verdict}"
    return {"score": score, "threshold": threshold, "is_outlier": is_outlier, "text": text}


def score_in_words(schema: InputSchema, score: float | None) -> str:
    """'score 0.38 (approved at 0.50 or above)'."""
    if score is None:
        return "no score"
    rule = threshold_rule(schema, float(score))
    return f"score {rule['score_shown']} ({rule['rule']})"


def class_in_words(schema: InputSchema, label: Any) -> str:
    """'denied (class 0)': the decision's word with the model's class beside it."""
    favourable = schema.is_favourable(label)
    if favourable is None:
        return "no decision" if label is None else f"class {label}"
    words = decision_words(schema)
    return f"{words['favourable' if favourable else 'unfavourable']} (class {label})"


def decision_in_words(
    schema: InputSchema,
    label: Any,
    score: float | None,
    features: Mapping[str, Any] | None = None,
    outlier: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    words = decision_words(schema)
    favourable = schema.is_favourable(label)
    decision = None if favourable is None else words["favourable" if favourable else "unfavourable"]
    rule = threshold_rule(schema, score)
    score_text = score_in_words(schema, score)
    protected = {p.name for p in schema.protected if p.feature}
    result: dict[str, Any] = {
        "decision": decision,
        "favourable": favourable,
        "class_label": label,
        "favourable_class": schema.favourable,
        "score": score,
        "threshold": rule["threshold"],
        "rule": rule["rule"],
        "score_shown": rule["score_shown"],
        "threshold_shown": rule["threshold_shown"],
        "score_text": score_text,
        "text": f"{decision or class_in_words(schema, label)}: {score_text}",
    }
    if outlier is not None:
        result["outlier"] = dict(outlier)
    if features is not None:
        result["features"] = [
            {
                "name": f.name,
                "description": f.description or "",
                "value": features.get(f.name),
                "text": f.value_label(features.get(f.name)),
                "also_protected": f.name in protected,
            }
            for f in schema.features
        ]
    return result


def changes_in_words(
    schema: InputSchema, changes: Mapping[str, Any] | None
) -> list[dict[str, str]]:
    """A counterfactual's or a perturbation's changes, each value with its label and code."""
    by_name = schema.by_name
    result = []
    for name, given in (changes or {}).items():
        feature = by_name.get(name)
        change = given if isinstance(given, Mapping) else {"from": None, "to": given}
        result.append(
            {
                "feature": name,
                "from": feature_label(feature, change.get("from")),
                "to": feature_label(feature, change.get("to")),
            }
        )
    return result


# The document ---------------------------------------------------------------------------------


def chain_check(session: Session, record: DecisionRecord) -> dict[str, Any]:
    """This record's own hashes, its links to both neighbours, and the checkpoint covering it."""
    previous = session.execute(
        sa.select(DECISIONS.c.record_hash).where(DECISIONS.c.seq == record.seq - 1)
    ).scalar()
    following = session.execute(
        sa.select(DECISIONS.c.prev_hash).where(DECISIONS.c.seq == record.seq + 1)
    ).scalar()
    content_ok = record.payload is None or content_hash(record.payload) == record.content_hash
    self_ok = record.record_hash == record_hash(
        CHAIN, record.seq, record.prev_hash, record.content_hash
    )
    expected_previous = GENESIS if record.seq == 1 else previous
    linked_back = record.prev_hash == expected_previous
    linked_forward = following is None or following == record.record_hash
    checkpoint = session.exec(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.chain == CHAIN, col(AuditCheckpoint.seq) >= record.seq)
        .order_by(col(AuditCheckpoint.seq))
        .limit(1)
    ).first()
    return {
        "chain": CHAIN,
        "seq": record.seq,
        "record_hash": record.record_hash,
        "content_matches_hash": content_ok,
        "record_hash_matches": self_ok,
        "linked_to_previous": linked_back,
        "linked_to_next": linked_forward if following is not None else None,
        "verified": content_ok and self_ok and linked_back and linked_forward,
        "signed_checkpoint": None
        if checkpoint is None
        else {"seq": checkpoint.seq, "signed_at": checkpoint.signed_at.isoformat()},
        "method": "sha256 over the canonical JSON content, and over chain|seq|prev_hash|content "
        "hash for the record; `govern audit verify` checks the whole chain",
    }


def recorded_outcome(
    session: Session, decision_id: str, schema: InputSchema
) -> dict[str, Any] | None:
    """The latest outcome recorded for the decision (a correction is a later row)."""
    rows = session.exec(
        select(DecisionOutcome)
        .where(DecisionOutcome.decision_id == decision_id)
        .order_by(col(DecisionOutcome.id).desc())
    ).all()
    if not rows:
        return None
    latest = rows[0]
    target = schema.target or "outcome"
    favourable = schema.is_favourable(latest.outcome)
    return {
        "outcome": latest.outcome,
        "observed_at": latest.observed_at.isoformat(),
        "recorded_at": latest.recorded_at.isoformat(),
        "recorded_by": latest.recorded_by,
        "earlier_records": len(rows) - 1,
        "favourable": favourable,
        "in_words": f"{target} = {latest.outcome}"
        + ("" if favourable is None else f" (the {'favourable' if favourable else 'other'} class)"),
    }


def stored_explanation(
    session: Session, decision_id: str, method: str, fields: tuple[str, ...]
) -> dict[str, Any] | None:
    """The latest stored explanation of this method for the decision, if one was computed."""
    row = session.exec(
        select(Explanation)
        .where(Explanation.decision_id == decision_id, Explanation.method == method)
        .order_by(col(Explanation.id).desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    result = {k: row.result[k] for k in fields if k in row.result}
    return {
        **result,
        "params": json.loads(row.params_key),
        "computed_at": row.created_at.isoformat(),
        "versions": row.versions,
    }


def live_fairness(
    session: Session,
    principal: Principal,
    settings: Settings,
    record: DecisionRecord,
    schema: InputSchema,
) -> dict[str, Any]:
    """The four-fifths verdict of the decision's model version on its endpoint, by each protected
    attribute on its own, with the reasons. Compliance and admin only."""
    names = schema.protected_names
    scope = {"endpoint": record.endpoint, "model": record.model, "version": record.version}
    if not sees_every_cell(principal.role):
        return {
            **scope,
            "withheld": True,
            "reason": "fairness verdicts name protected groups: only compliance and admin see "
            "them in the dossier",
            "attributes": [],
        }
    attributes: list[dict[str, Any]] = []
    for name in names:
        try:
            report = fairness_service.version_report(
                session,
                principal,
                settings,
                endpoint=record.endpoint,
                model=record.model,
                version=record.version,
                attributes=[name],
            )
        except GovernanceError as exc:
            attributes.append({"attribute": name, "not_computed": exc.message})
            continue
        attributes.append(
            {
                "attribute": name,
                **{k: report.get(k) for k in FAIRNESS_FIELDS},
                "groups": [
                    {k: g.get(k) for k in FAIRNESS_GROUP_FIELDS} for g in report.get("groups", [])
                ],
            }
        )
    return {
        **scope,
        "withheld": False,
        "min_group_size": settings.fairness_min_group_size,
        "reporting_threshold": settings.min_cell_size,
        "attributes": attributes,
        "note": "decisions of this model version on this endpoint, by each protected attribute "
        "on its own; the rule and the verdicts are those of GET /api/v1/fairness",
    }


SHAP_PARAMS: dict[str, Any] = {"seed": None}
COUNTERFACTUAL_PARAMS: dict[str, Any] = {"k": 3, "seed": None}


def explanations_pending(session: Session, decision_id: str) -> bool:
    """Whether opening this decision would compute an explanation first (SHAP, from which the
    reasons come, or the counterfactuals): the first view of a decision."""
    logged = explain_service.logged_decision(session, decision_id)
    return not (
        explain_service.is_stored(session, logged, "shap", SHAP_PARAMS)
        and explain_service.is_stored(session, logged, "counterfactual", COUNTERFACTUAL_PARAMS)
    )


def explanations(
    session: Session,
    explainers: explain_service.Explainers,
    decision_id: str,
    principal: Principal,
    schema: InputSchema,
) -> dict[str, Any]:
    """The reasons, the SHAP attributions and the best counterfactual, in words (each computed
    and stored the first time, and recorded in the access trail as the API records it)."""
    reasons = explain_service.reasons_for(session, explainers, decision_id, principal)
    shap = explain_service.explain(session, explainers, decision_id, "shap", SHAP_PARAMS, principal)
    counterfactual = explain_service.explain(
        session, explainers, decision_id, "counterfactual", COUNTERFACTUAL_PARAMS, principal
    )
    best = (counterfactual.get("counterfactuals") or [None])[0]
    return {
        "reasons": {k: reasons[k] for k in ("favourable", "label", "reasons") if k in reasons}
        | {"source": reasons.get("source")},
        "shap": {
            k: shap.get(k)
            for k in ("base_value", "values", "output", "space", "method", "seed", "versions")
        },
        "counterfactual": {
            "from_label": counterfactual.get("from_label"),
            "target_label": counterfactual.get("target_label"),
            "best": best,
            "best_in_words": None
            if best is None
            else {
                "decision": class_in_words(schema, best.get("label")),
                "score_text": score_in_words(schema, best.get("score")),
                "changes": changes_in_words(schema, best.get("changes")),
            },
            "requested": counterfactual.get("requested", counterfactual.get("k")),
            "returned": counterfactual.get(
                "returned", len(counterfactual.get("counterfactuals") or [])
            ),
            "shortfall_reason": counterfactual.get("shortfall_reason"),
            "message": counterfactual.get("message"),
            "constraints": counterfactual.get("constraints"),
            "seed": counterfactual.get("seed"),
        },
    }


def explanations_of(
    session: Session,
    explainers: explain_service.Explainers,
    decision_id: str,
    principal: Principal,
) -> dict[str, Any]:
    """``explanations`` on their own, with the decision in words they are read against."""
    record = lookups.get_decision(session, decision_id)
    _version, schema = _version_of(session, record)
    return {
        **explanations(session, explainers, decision_id, principal, schema),
        "in_words": {"decision": class_in_words(schema, record.label)},
    }


def build(
    session: Session,
    serving: Serving,
    explainers: explain_service.Explainers,
    decision_id: str,
    principal: Principal,
    *,
    with_explanations: bool = True,
) -> dict[str, Any]:
    """The dossier. Without explanations (a page that loads them on its own), ``reasons``,
    ``shap`` and ``counterfactual`` are None."""
    record = lookups.get_decision(session, decision_id)
    public = lookups.decision_public(session, record, principal, serving)
    version, schema = _version_of(session, record)
    explained = (
        explanations(session, explainers, decision_id, principal, schema)
        if with_explanations
        else {"reasons": None, "shap": None, "counterfactual": None}
    )
    replay = explain_service.what_if(session, serving, decision_id, {}, principal)
    summary = public.lineage or {}
    detector = summary.get("outlier_detector") or {}
    robustness = stored_explanation(session, decision_id, "robustness", ROBUSTNESS_FIELDS)
    if robustness is not None:
        robustness["perturbation_in_words"] = changes_in_words(
            schema, robustness.get("perturbation")
        )
    document = {
        "decision": public.model_dump(mode="json", exclude={"lineage"}),
        "decision_words": decision_words(schema),
        "in_words": decision_in_words(
            schema,
            public.label,
            public.score,
            public.features or {},
            outlier_in_words(public.outlier_score, public.is_outlier, detector.get("threshold")),
        ),
        "outcome": recorded_outcome(session, decision_id, schema),
        "model": public.lineage,
        "rebuild": last_rebuild(session, version),
        **explained,
        "anchor": stored_explanation(session, decision_id, "anchor", ANCHOR_FIELDS),
        "robustness": robustness,
        "replay": {
            "logged": replay["logged"],
            "replay": replay["replay"],
            "reproduces_logged_decision": replay["reproduces_logged_decision"],
            "logged_decision": class_in_words(schema, replay["logged"]["label"]),
            "replayed_decision": class_in_words(schema, replay["replay"]["label"]),
            "logged_as_a_decision": False,
        },
        "fairness": live_fairness(session, principal, serving.settings, record, schema),
        "chain": chain_check(session, record),
        "redacted": public.redacted,
    }
    access.record(session, principal, "dossier.read", target=decision_id)
    return document


def replay_in_words(
    session: Session,
    serving: Serving,
    decision_id: str,
    overrides: dict[str, Any],
    principal: Principal,
) -> dict[str, Any]:
    """A what-if replay (``explain.service.what_if``: recorded in the access trail as a replay,
    never logged as a decision) with both decisions in words, for an appeals handler."""
    replay = explain_service.what_if(session, serving, decision_id, overrides, principal)
    _version, schema = _version_of(session, lookups.get_decision(session, decision_id))
    return {
        **replay,
        "logged_decision": class_in_words(schema, replay["logged"]["label"]),
        "replayed_decision": class_in_words(schema, replay["replay"]["label"]),
    }


def _version_of(session: Session, record: Any) -> tuple[ModelVersion, InputSchema]:
    """The model version that made a logged decision, and its input schema."""
    _model, version = registry.get_version(
        session=session, name=str(record.model), version=int(record.version or 0)
    )
    return version, InputSchema.from_document(version.input_schema)
