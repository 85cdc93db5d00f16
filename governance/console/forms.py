"""What people type into the console's forms, read into the services' terms. Pure.

A browser sends every field of a form, empty ones as ``""``: here an empty field means "any".
Problems are collected, each naming its field, and shown in the page next to the form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from core.errors import GovernanceError
from governance.compliance.decisions import DecisionFilter
from serving.state import Serving

TEXT_FIELDS = {"endpoint": 100, "model": 100, "route": 40, "subject_id": 200, "label": 200}
CHOICES = {"": None, "yes": True, "no": False}
KINDS = ("decision", "shadow", "rejected")
FEATURE = "feature."
MAX_FEATURE_CHARS = 1000


@dataclass
class DecisionSearch:
    """The decision search form: its values as typed, and the problems found in them."""

    values: dict[str, str]
    problems: list[dict[str, str]] = field(default_factory=list)
    parsed: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, query: Mapping[str, str]) -> DecisionSearch:
        names = [*TEXT_FIELDS, "version", "since", "until", "outlier", "has_outcome", "kind"]
        form = cls(values={name: (query.get(name) or "").strip() for name in names})
        form._parse()
        return form

    def _problem(self, name: str, message: str) -> None:
        self.problems.append({"field": name, "message": message})

    def _parse(self) -> None:
        v = self.values
        for name, most in TEXT_FIELDS.items():
            if len(v[name]) > most:
                self._problem(name, f"at most {most} characters")
            elif v[name]:
                self.parsed[name] = v[name]
        self._parse_version_and_dates()
        for name in ("outlier", "has_outcome"):
            if v[name] not in CHOICES:
                self._problem(name, "yes, no, or empty for either")
            elif CHOICES[v[name]] is not None:
                self.parsed[name] = CHOICES[v[name]]
        if v["kind"] and v["kind"] not in KINDS:
            self._problem("kind", f"one of {', '.join(KINDS)}")
        self.parsed["kind"] = v["kind"] or "decision"

    def _parse_version_and_dates(self) -> None:
        v = self.values
        if v["version"]:
            if v["version"].isdigit() and 1 <= int(v["version"]) < 2**31:
                self.parsed["version"] = int(v["version"])
            else:
                self._problem("version", "a whole number from 1")
        for name, shift in (("since", 0), ("until", 1)):
            if not v[name]:
                continue
            try:
                day = date.fromisoformat(v[name])
            except ValueError:
                self._problem(name, "a date, as YYYY-MM-DD")
                continue
            # The whole day, in UTC: "until 2026-12-01" includes that day.
            self.parsed[name] = datetime.combine(day, time(), UTC) + timedelta(days=shift)
        since, until = self.parsed.get("since"), self.parsed.get("until")
        if since is not None and until is not None and since >= until:
            self._problem("until", "must not be before the 'from' date")

    @property
    def narrowed(self) -> bool:
        """Whether the person asked for anything but every decision."""
        return any(s for k, s in self.values.items() if k != "kind") or self.values["kind"] not in (
            "",
            "decision",
        )

    def filters(self) -> DecisionFilter:
        return DecisionFilter(**self.parsed)

    def query(self, **extra: Any) -> dict[str, str]:
        """The search as query parameters (for the next page and the exports)."""
        shown = {k: s for k, s in self.values.items() if s}
        return {**shown, **{k: str(x) for k, x in extra.items() if x is not None}}


def overrides_of(form: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The replay form's changed features: ``feature.<name>`` fields whose value differs from
    the logged one in ``original.<name>``. A number is read as a number; an empty field is a
    missing value; anything else is text, which the model's input schema then checks."""
    overrides: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for key, raw in form.items():
        if not isinstance(key, str) or not key.startswith(FEATURE) or not isinstance(raw, str):
            continue
        name = key[len(FEATURE) :]
        if len(raw) > MAX_FEATURE_CHARS:
            problems.append({"field": name, "message": f"at most {MAX_FEATURE_CHARS} characters"})
            continue
        if raw.strip() == str(form.get(f"original.{name}", "")).strip():
            continue
        overrides[name] = typed(raw)
    return overrides, problems


def typed(raw: str) -> Any:
    text = raw.strip()
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text  # "nan" or "inf" typed as text stays text, and the schema says why
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


def problems_in(details: Any) -> list[dict[str, str]]:
    """The fields at fault in an error's details: a list of them, or ``{"problems": [...]}``."""
    if isinstance(details, dict) and isinstance(details.get("problems"), list):
        details = details["problems"]
    if not isinstance(details, list):
        return []
    return [
        {"field": str(d.get("field", "")), "message": str(d.get("message", ""))}
        for d in details
        if isinstance(d, dict)
    ]


def problems_of(exc: GovernanceError) -> list[dict[str, str]]:
    return problems_in(exc.details) or [{"field": "", "message": exc.message}]


def shap_chart(document: Mapping[str, Any], most: int = 12) -> dict[str, Any]:
    """A waterfall of the SHAP attributions: from the base value, the largest contributions in
    order of size (the rest summed as one bar), to the output. Each bar is [start, end]."""
    shap = document.get("shap") or {}
    values: dict[str, float] = shap.get("values") or {}
    ranked = sorted(values.items(), key=lambda item: abs(item[1]), reverse=True)
    shown, rest = ranked[:most], ranked[most:]
    if rest:
        shown.append((f"{len(rest)} other features", sum(v for _, v in rest)))
    base = float(shap.get("base_value") or 0.0)
    bars, level = [], base
    for name, value in shown:
        bars.append({"label": name, "start": level, "end": level + value, "value": value})
        level += value
    return {
        "base": base,
        "output": shap.get("output"),
        "space": shap.get("space"),
        "bars": bars,
    }


WINDOWS = ("", "day", "week", "month")
SCOPE = ("endpoint", "since", "until", "version")


def _scoped_values(
    query: Mapping[str, str], names: list[str], endpoints: list[str]
) -> dict[str, str]:
    """The fields as typed; the endpoint is chosen for the person when there is only one."""
    values = {name: (query.get(name) or "").strip() for name in [*SCOPE, *names]}
    if not values["endpoint"] and len(endpoints) == 1:
        values["endpoint"] = endpoints[0]
    return values


def _parse_scope(
    values: dict[str, str],
    endpoints: list[str],
    problems: list[dict[str, str]],
    parsed: dict[str, Any],
) -> None:
    """The endpoint checked, and the dates and version read as the decision search reads them."""
    if values["endpoint"] and values["endpoint"] not in endpoints:
        problems.append({"field": "endpoint", "message": "no such endpoint"})
    scope = DecisionSearch.of({name: values[name] for name in SCOPE[1:]})
    problems += scope.problems
    parsed.update({name: scope.parsed.get(name) for name in SCOPE[1:]})


@dataclass
class FairnessForm:
    """The fairness form: an endpoint, one or more protected attributes (several intersect),
    optional numeric bins, dates, a model version and a window for the trend."""

    values: dict[str, str]
    problems: list[dict[str, str]] = field(default_factory=list)
    parsed: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, query: Mapping[str, str], endpoints: list[str]) -> FairnessForm:
        values = _scoped_values(
            query, ["attributes", "bins", "window", "min_group_size"], endpoints
        )
        if "window" not in query:
            values["window"] = "month"
        form = cls(values=values)
        form._parse(endpoints)
        return form

    @property
    def ready(self) -> bool:
        return bool(self.values["endpoint"] and self.values["attributes"])

    def _parse(self, endpoints: list[str]) -> None:
        v = self.values
        _parse_scope(v, endpoints, self.problems, self.parsed)
        attributes = [a.strip() for a in v["attributes"].split(",") if a.strip()]
        if len(attributes) > 3 or any(len(a) > 100 for a in attributes):
            self.problems.append({"field": "attributes", "message": "at most 3 names"})
        self.parsed["attributes"] = attributes
        self.parsed["bins"] = [b.strip() for b in v["bins"].split(";") if b.strip()][:3]
        if v["window"] not in WINDOWS:
            self.problems.append({"field": "window", "message": "day, week, month or none"})
        size = v["min_group_size"]
        if size and not (size.isdigit() and 1 <= int(size) <= 1_000_000):
            self.problems.append({"field": "min_group_size", "message": "a whole number from 1"})
        elif size:
            self.parsed["min_group_size"] = int(size)

    def arguments(self) -> dict[str, Any]:
        return {
            "endpoint": self.values["endpoint"],
            "attributes": self.parsed["attributes"],
            "bins": self.parsed["bins"],
            "since": self.parsed["since"],
            "until": self.parsed["until"],
            "model": None,
            "version": self.parsed["version"],
            "route": None,
            "window": self.values["window"] or None,
        }


def protected_of(serving: Serving, endpoint: str) -> list[str]:
    """The protected attributes the endpoint's models record, for the form's hint."""
    if not endpoint:
        return []
    try:
        config = serving.config_for(endpoint)
        names: list[str] = []
        for model, version in config.targets():
            schema = serving.model(model, version).input_schema
            names += [n for n in schema.protected_names if n not in names]
        return names
    except GovernanceError:
        return []


def _group(group: Any) -> str:
    if isinstance(group, Mapping):
        return ", ".join(f"{k}={v}" for k, v in group.items())
    return str(group)


def fairness_chart(report: Mapping[str, Any]) -> dict[str, Any]:
    """Selection rate and its 95% interval by group, the disparate impact ratio against the
    four-fifths line (violations marked), and the selection rate of each group by period."""
    groups = report.get("groups") or []
    rule = report.get("verdict_rule") or {}
    rows = []
    for g in groups:
        interval = g.get("selection_rate_ci95") or [None, None]
        rows.append(
            {
                "label": _group(g.get("group")),
                "rate": g.get("selection_rate"),
                "low": interval[0],
                "high": interval[1],
                "ratio": g.get("disparate_impact_ratio"),
                "violated": g.get("four_fifths_verdict") == "violated",
                "small": bool(g.get("below_minimum_size")),
            }
        )
    trend: dict[str, list[Any]] = {}
    periods = [p.get("period") for p in report.get("trend") or []]
    for index, period in enumerate(report.get("trend") or []):
        for g in period.get("groups") or []:
            series = trend.setdefault(_group(g.get("group")), [None] * len(periods))
            series[index] = g.get("selection_rate")
    return {
        "groups": rows,
        "threshold": rule.get("ratio_threshold", 0.8),
        "periods": periods,
        "trend": [{"label": k, "rates": v} for k, v in trend.items()],
    }


@dataclass
class DriftForm:
    """The drift form: an endpoint, dates and a model version."""

    values: dict[str, str]
    problems: list[dict[str, str]] = field(default_factory=list)
    parsed: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, query: Mapping[str, str], endpoints: list[str]) -> DriftForm:
        form = cls(values=_scoped_values(query, [], endpoints))
        _parse_scope(form.values, endpoints, form.problems, form.parsed)
        return form


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def distributions(feature: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A feature's bins with both sides as shares of their rows (and the counts behind them)."""
    histogram = feature.get("histogram") or {}
    labels = histogram.get("labels") or []
    training, live = histogram.get("training") or [], histogram.get("live") or []
    return [
        {"label": label, "training": t, "live": n, "training_share": ts, "live_share": ns}
        for label, t, n, ts, ns in zip(
            labels, training, live, _shares(training), _shares(live), strict=True
        )
    ]


def drift_chart(report: Mapping[str, Any]) -> dict[str, Any]:
    """Each feature's PSI against the threshold it was judged by, and its distribution in the
    training rows against these decisions, for each model version."""
    versions = []
    for v in report.get("versions") or []:
        features = v.get("features") or {}
        versions.append(
            {
                "label": f"{v.get('model')} v{v.get('version')}",
                "features": list(features),
                "psi": [f.get("psi") for f in features.values()],
                "threshold": [f.get("psi_threshold_used") for f in features.values()],
                "drifted": [bool(f.get("drifted")) for f in features.values()],
                "distributions": [
                    {
                        "labels": [b["label"] for b in bins],
                        "training": [b["training_share"] for b in bins],
                        "live": [b["live_share"] for b in bins],
                    }
                    for bins in (distributions(f) for f in features.values())
                ],
            }
        )
    return {"versions": versions}
