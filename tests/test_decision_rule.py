"""The decision rule is written once, checked on the source with ``ast``.

A score at or above the version's threshold gives the positive class: ``InputSchema.positive``
and ``InputSchema.label_for`` in ``lineage/input_schema.py`` say so, and nothing else in the app
packages compares a value with something named ``threshold`` (``>=``, ``>``, ``<=`` or ``<``),
so a second copy of the rule (or of its default) cannot drift from the first.

Other thresholds are not the decision's: each is allowed by its module and the exact operand
compared, with the reason, so the same module cannot slip a decision rule in beside it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "lineage", "serving", "explain", "rebuild", "governance")
RULE_MODULE = "lineage.input_schema"  # the one place the decision rule is written
ORDERING = (ast.GtE, ast.Gt, ast.LtE, ast.Lt)
ALLOWED: dict[tuple[str, str], str] = {
    ("lineage.outliers", "self.threshold"): "the out-of-distribution detector's distance cut",
    ("lineage.outliers", "detector.threshold"): "the same, measured on training and validation",
    ("lineage.proxies", "threshold"): "the AUC at which a feature is named a proxy",
    ("lineage.training", "spec.gate.threshold"): "the registration gate on a validation metric",
    ("explain.anchors", "threshold"): "the precision an anchor rule must reach",
    ("serving.routing", "threshold"): "the point of a weighted traffic split, not a score",
}


@dataclass(frozen=True)
class Finding:
    module: str
    line: int
    operand: str
    text: str


def check_module(module: str, source: str) -> list[Finding]:
    """Every ordering comparison in ``source`` with an operand named like a threshold."""
    findings = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            if not isinstance(op, ORDERING):
                continue
            for operand in operands[i : i + 2]:
                text = ast.unparse(operand)
                if "threshold" in text.lower():
                    findings.append(Finding(module, node.lineno, text, ast.unparse(node)))
    return sorted(findings, key=lambda f: f.line)


def _modules() -> list[tuple[str, str]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found.append((module, path.read_text(encoding="utf-8")))
    return found


def _all_findings() -> list[Finding]:
    return [f for module, source in _modules() for f in check_module(module, source)]


def test_the_score_to_label_rule_is_written_in_one_place() -> None:
    copies = [
        f"{f.module}:{f.line}: {f.text}"
        for f in _all_findings()
        if f.module != RULE_MODULE and (f.module, f.operand) not in ALLOWED
    ]
    assert not copies, (
        "compare a score with the version's threshold through InputSchema.label_for or "
        f"InputSchema.positive, or allow a threshold that is not the decision's: {copies}"
    )


def test_the_rule_is_where_it_is_said_to_be_and_every_allowance_is_used() -> None:
    findings = _all_findings()
    assert any(f.module == RULE_MODULE and f.text == "score >= self.threshold" for f in findings)
    used = {(f.module, f.operand) for f in findings}
    assert not set(ALLOWED) - used, f"allowances matching nothing: {sorted(set(ALLOWED) - used)}"


def test_a_copy_of_the_rule_is_found_in_any_form() -> None:
    source = """
def label(schema, score, document):
    a = 1 if score >= schema.threshold else 0
    b = score < document["threshold"]
    c = threshold <= score
    d = 0 < score >= float(document.get("threshold", 0.5))
    return a, b, c, d
"""
    found = check_module("serving.somewhere", source)
    assert [f.line for f in found] == [3, 4, 5, 6]
    assert found[1].operand == "document['threshold']"
    assert check_module("serving.somewhere", "ok = score >= cut and name == 'threshold'\n") == []
