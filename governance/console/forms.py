"""What people type into the console's forms, read into the services' terms. Pure.

A browser sends every field of a form, empty ones as ``""``: here an empty field means "any".
Problems are collected, each naming its field, and shown in the page next to the form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from core.errors import GovernanceError
from governance.compliance.decisions import DecisionFilter

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


def problems_of(exc: GovernanceError) -> list[dict[str, str]]:
    details = exc.details
    if isinstance(details, dict) and isinstance(details.get("problems"), list):
        details = details["problems"]
    if isinstance(details, list):
        found = [
            {"field": str(d.get("field", "")), "message": str(d.get("message", ""))}
            for d in details
            if isinstance(d, dict)
        ]
        if found:
            return found
    return [{"field": "", "message": exc.message}]


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
