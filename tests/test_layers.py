"""The layers, checked on the source with ``ast``: each package imports only from the layers below.

    core                       settings, db, errors, auth, the chain ledger: imports no domain
    lineage                    data versions, training, the registry, a model's input schema
    serving                    endpoints, predict, the decision log
    explain, rebuild           explanations, fairness, drift; rebuilds (they replay on serving)
    governance                 the app factory, the CLI, the compliance workbench, audit across
                               chains, alerts, the demo

An import of a higher layer, or of another package on the same layer, is a loop waiting to happen.
Imports inside functions count too, so none can hide there; the CLI alone imports inside its
commands, to start fast.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"core"}),
    frozenset({"lineage"}),
    frozenset({"serving"}),
    frozenset({"explain", "rebuild"}),
    frozenset({"governance"}),
)
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
# Modules whose imports of app packages may sit inside functions (lazy, for start-up time).
LAZY_ALLOWED = ("governance.cli",)


@dataclass(frozen=True)
class Finding:
    module: str
    line: int
    target: str
    problem: str


def _targets(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def check_module(module: str, source: str) -> list[Finding]:
    """Every import in ``source`` (the text of ``module``) that breaks the layering."""
    tree = ast.parse(source)
    package = module.split(".", maxsplit=1)[0]
    inside = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(node)
    }
    findings = []
    for node in ast.walk(tree):
        for target in _targets(node):
            top = target.split(".")[0]
            if top not in RANK or top == package:
                continue
            line = getattr(node, "lineno", 0)
            if RANK[top] > RANK[package]:
                findings.append(Finding(module, line, target, "imports a higher layer"))
            elif RANK[top] == RANK[package]:
                findings.append(Finding(module, line, target, "imports a package on its own layer"))
            elif id(node) in inside and not module.startswith(LAZY_ALLOWED):
                findings.append(Finding(module, line, target, "imports inside a function"))
    return findings


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in RANK:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found.append((module.removesuffix(".__init__"), path))
    return found


def test_every_package_imports_only_the_layers_below() -> None:
    modules = _modules()
    assert len(modules) > 100  # the walk found the source tree
    findings = [f for module, path in modules for f in check_module(module, path.read_text())]
    assert findings == [], "\n".join(
        f"{f.module}:{f.line} {f.problem}: {f.target}" for f in findings
    )


def test_no_two_top_level_packages_import_each_other() -> None:
    edges = {
        (module.split(".")[0], target.split(".")[0])
        for module, path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        for target in _targets(node)
        if target.split(".")[0] in RANK and target.split(".")[0] != module.split(".")[0]
    }
    assert ("governance", "lineage") in edges  # the walk sees real edges
    assert sorted((a, b) for a, b in edges if (b, a) in edges) == []


@pytest.mark.parametrize(
    ("module", "source", "problem"),
    [
        ("core.db", "from lineage import service\n", "imports a higher layer"),
        ("lineage.runner", "import serving.service\n", "imports a higher layer"),
        ("explain.service", "from rebuild import service\n", "imports a package on its own layer"),
        (
            "serving.service",
            "def f():\n    from lineage import service\n",
            "imports inside a function",
        ),
        (
            "rebuild.service",
            "async def f():\n    import governance.app\n",
            "imports a higher layer",
        ),
    ],
)
def test_the_check_finds_each_kind_of_bad_import(module: str, source: str, problem: str) -> None:
    assert [f.problem for f in check_module(module, source)] == [problem]


def test_the_check_passes_downward_imports_and_lazy_cli_imports() -> None:
    assert (
        check_module("explain.service", "from core.db import transaction\nimport lineage\n") == []
    )
    assert check_module("governance.cli.explain", "def f():\n    from explain import bulk\n") == []
