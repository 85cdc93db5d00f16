"""What an adverse-action notice says, and whether its reasons are stable. Pure computation.

A notice states the action taken, the creditor, the ECOA statement with the agency that
administers compliance, and at most four principal reasons: the decision's reason codes, in
their order, in plain words with the applicant's value. A reason may only name a feature the
model scored (``explain.reasons`` guarantees that) and never a protected attribute: a reason on
one is left out and the notice is held for a person to review.

**Stability.** Before a notice is issued, the reasons are computed again with two other explainer
seeds (for a sampling explainer the seed draws its background sample too). When the set of the
top four reasons differs between seeds, the notice is held and the differences are shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from lineage.input_schema import InputSchema

MAX_NOTICE_REASONS = 4
OTHER_SEEDS = 2  # besides the recorded one

HELD_UNSTABLE = "unstable_reasons"
HELD_PROTECTED = "protected_attribute_reason"
HELD_NO_REASON = "no_reason"


def seeds_for(recorded: int | None) -> list[int | None]:
    """The recorded seed and two others; an exact explainer (tree SHAP, no seed) once."""
    if recorded is None:
        return [None]
    return [recorded, *(recorded + k for k in range(1, OTHER_SEEDS + 1))]


def stability(
    by_seed: Sequence[tuple[int | None, Sequence[Mapping[str, Any]]]], method: str
) -> dict[str, Any]:
    """Compare the top-four reason codes computed under each seed with the first's."""
    (first_seed, first), *others = by_seed
    base = [str(r["code"]) for r in first[:MAX_NOTICE_REASONS]]
    differences = []
    sets = [{"seed": first_seed, "codes": base}]
    for seed, reasons in others:
        codes = [str(r["code"]) for r in reasons[:MAX_NOTICE_REASONS]]
        sets.append({"seed": seed, "codes": codes})
        added, removed = sorted(set(codes) - set(base)), sorted(set(base) - set(codes))
        if added or removed:
            differences.append({"seed": seed, "added": added, "removed": removed})
    if not others:
        how = f"{method}: exact, no seed changes it; checked once"
    else:
        how = (
            f"{method}: the top {MAX_NOTICE_REASONS} reasons computed with seeds "
            f"{', '.join(str(s) for s, _ in by_seed)} (each seed also draws the background "
            "sample) and compared as sets"
        )
    return {"stable": not differences, "sets": sets, "differences": differences, "method": how}


def feature_words(name: str) -> str:
    """A feature's name as words: ``debt_to_income`` is "debt to income"."""
    return name.replace("_", " ").strip()


def value_words(value: Any, label: Any) -> str | None:
    """The applicant's value as a person reads it: 12,000 or 0.45 for a number, the label (with
    its code) for a category, nothing when it is missing."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(label if label not in (None, "") else value)
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) >= 1 else f"{value:.4g}"


def notice_reasons(
    schema: InputSchema, reasons: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """At most four reasons, in order, in words; and the protected attributes left out."""
    protected = set(schema.protected_names)
    kept: list[dict[str, Any]] = []
    left_out: list[str] = []
    for reason in reasons:
        if reason["feature"] in protected:
            left_out.append(str(reason["feature"]))
            continue
        if len(kept) == MAX_NOTICE_REASONS:
            break
        kept.append(
            {
                "rank": len(kept) + 1,
                "code": reason["code"],
                "text": reason["text"],
                "feature": feature_words(str(reason["feature"])),
                "value": value_words(reason.get("value"), reason.get("value_label")),
            }
        )
    return kept, left_out


def held_because(
    reasons: Sequence[Mapping[str, Any]], left_out: Sequence[str], stable: Mapping[str, Any]
) -> list[str]:
    held = []
    if not stable["stable"]:
        held.append(HELD_UNSTABLE)
    if left_out:
        held.append(HELD_PROTECTED)
    if not reasons:
        held.append(HELD_NO_REASON)
    return held


HELD_WORDS = {
    HELD_UNSTABLE: "the principal reasons change under another explainer seed",
    HELD_PROTECTED: "a principal reason is a protected attribute, which a notice never names",
    HELD_NO_REASON: "no principal reason could be given",
}


def score_disclosure(
    disclosure: Mapping[str, Any] | None,
    score: float | None,
    decided_at: datetime,
    reasons: Sequence[Mapping[str, Any]],
) -> dict[str, Any] | None:
    """FCRA section 615: the score used, its range, the key factors, the date and the source,
    when the model is configured for it (``GOV_NOTICE_SCORE_DISCLOSURE``)."""
    if not disclosure or score is None:
        return None
    low, high = disclosure["range"]
    return {
        "name": disclosure.get("name", "credit score"),
        "value": round(float(score), 4),
        "range": [low, high],
        "date": decided_at.date().isoformat(),
        "source": disclosure["source"],
        "key_factors": [r["text"] for r in reasons],
    }


def content(
    *,
    notice_id: str,
    decision: Mapping[str, Any],
    action: str,
    reasons: Sequence[Mapping[str, Any]],
    creditor: Mapping[str, str],
    agency: str,
    generated_at: datetime,
    score: dict[str, Any] | None,
) -> dict[str, Any]:
    """Everything the notice template renders, and nothing else: no protected attribute, no
    internal score unless disclosed under FCRA."""
    return {
        "notice_id": notice_id,
        "decision_id": decision["decision_id"],
        "applicant_reference": decision.get("subject_id") or decision["decision_id"],
        "decision_date": decision["created_at"].date().isoformat(),
        "date": generated_at.date().isoformat(),
        "action": action,
        "creditor": dict(creditor),
        "agency": agency,
        "reasons": [dict(r) for r in reasons],
        "score": score,
        "model": {"name": decision["model"], "version": decision["version"]},
    }
