"""How long ``govern`` takes to start, as a ratio to ``python -c pass`` run side by side.

Each round starts three fresh interpreters, one after the other: ``python -c pass``, ``govern
--help`` and ``govern models list`` (against a migrated SQLite database holding the demo's model,
set up once in a temporary var dir unless ``--var-dir`` names one). Reported for each command: the
median wall time over ``--runs`` rounds and its ratio to ``python -c pass``'s median, and the
median CPU time (user + system, which other people's load on a shared machine disturbs less).

``govern`` is the ``governance.cli`` of ``--tree`` (default: this checkout), started as ``python -c
"from governance.cli import main; main()" ARGS`` in that directory, so an older checkout (a git
worktree of the commit before a change) is measured the same way, with the same interpreter and
the same database.

Compiled bytecode: by default each run reads it from a private cache (``PYTHONPYCACHEPREFIX``),
filled by one unmeasured run of each command first: what a person feels from the second start
on any ordinary install. With ``--no-bytecode``, ``PYTHONDONTWRITEBYTECODE=1`` and no cache:
Python reads bytecode only where it already lies beside the sources (on the project's machine,
the standard library's) and compiles every other module it imports, on every start.

Several ``--tree``s are measured side by side, alternating within each round, so that a before
and an after see the same load:

    git worktree add /tmp/before HEAD~1
    uv run python -m bench.cli_startup --tree /tmp/before --tree . [--runs 10] [--no-bytecode]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = "from governance.cli import main; main()"
COMMANDS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "govern --help": ["-c", LAUNCH, "--help"],
    "govern models list": ["-c", LAUNCH, "models", "list"],
}
# What each command's output must contain: a figure is kept only for a command that worked.
EXPECTED = {"govern --help": "models", "govern models list": "credit"}


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float


def _run(args: list[str], cwd: Path, env: dict[str, str], expect: str | None) -> Run:
    """One fresh interpreter; its wall time and the CPU time it and its children used."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    if proc.returncode != 0 or (expect is not None and expect not in text):
        raise RuntimeError(f"{args} exited {proc.returncode} in {cwd}:\n{text[-2000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime)


def _environment(var_dir: Path, cache: Path, bytecode: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOV_", "PYTHON"))}
    env.update(GOV_VAR_DIR=str(var_dir), GOV_LOG_LEVEL="warning")
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _set_up(tree: Path, env: dict[str, str]) -> None:
    """A migrated database with the demo's model (no decisions), made by the tree's own CLI."""
    for args in (["migrate"], ["demo", "--decisions", "0"]):
        done = subprocess.run(
            [sys.executable, "-c", LAUNCH, *args],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"govern {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def _label(tree: Path) -> str:
    """The tree's commit, and whether its files differ from it."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(tree), *args], capture_output=True, text=True, check=False
        )

    commit = git("log", "-1", "--format=%h")
    if commit.returncode != 0:
        return tree.name
    changed = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return commit.stdout.strip() + (" + changes" if changed else "")


def measure(
    trees: list[Path], var_dir: Path, runs: int, bytecode: bool
) -> dict[tuple[str, str], list[Run]]:
    """Each round: ``python -c pass``, then each command in each tree, one after the other."""
    plan = [("python -c pass", trees[0])] + [
        (name, tree) for name in COMMANDS if name != "python -c pass" for tree in trees
    ]
    results: dict[tuple[str, str], list[Run]] = {(n, str(t)): [] for n, t in plan}
    with tempfile.TemporaryDirectory(prefix="cli-startup-pyc-") as cache:
        env = _environment(var_dir, Path(cache), bytecode)
        if bytecode:  # fill the cache; these runs are not measured
            for name, tree in plan:
                _run(COMMANDS[name], tree, env, EXPECTED.get(name))
        for _ in range(runs):
            for name, tree in plan:
                results[(name, str(tree))].append(
                    _run(COMMANDS[name], tree, env, EXPECTED.get(name))
                )
    return results


def report(results: dict[tuple[str, str], list[Run]]) -> str:
    base = next(runs for (name, _tree), runs in results.items() if name == "python -c pass")
    base_wall = statistics.median(r.wall_s for r in base)
    base_cpu = statistics.median(r.cpu_s for r in base)
    lines = [
        "| command | tree | median wall | ratio to `python -c pass` | median CPU | ratio (CPU) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (name, tree), runs in results.items():
        wall = statistics.median(r.wall_s for r in runs)
        cpu = statistics.median(r.cpu_s for r in runs)
        label = "" if name == "python -c pass" else _label(Path(tree))
        cpu_ratio = f"{cpu / base_cpu:.0f}x" if base_cpu > 0 else "-"
        lines.append(
            f"| `{name}` | {label} | {wall:.3f} s | {wall / base_wall:.0f}x | {cpu:.3f} s "
            f"| {cpu_ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="measured rounds (default 10)")
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="a checkout to measure; repeat to measure several side by side (default: this one)",
    )
    parser.add_argument(
        "--no-bytecode", action="store_true", help="no bytecode cache: every import compiles"
    )
    parser.add_argument(
        "--var-dir",
        type=Path,
        help="a var dir whose database already holds a model (default: a new one, set up by "
        "the first tree's CLI)",
    )
    args = parser.parse_args()
    trees = [t.resolve() for t in args.tree or [ROOT]]
    with tempfile.TemporaryDirectory(prefix="cli-startup-var-") as scratch:
        var_dir = args.var_dir.resolve() if args.var_dir else Path(scratch)
        if args.var_dir is None:
            with tempfile.TemporaryDirectory(prefix="cli-startup-pyc-") as cache:
                _set_up(trees[0], _environment(var_dir, Path(cache), bytecode=True))
        load_before = os.getloadavg()[0]
        results = measure(trees, var_dir, args.runs, bytecode=not args.no_bytecode)
        load_after = os.getloadavg()[0]
    print(
        f"{args.runs} rounds; bytecode "
        f"{'none (compiled on every start)' if args.no_bytecode else 'cached'}; "
        f"load average {load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} CPUs); "
        + "; ".join(f"{_label(t)} is {t}" for t in trees)
    )
    print(report(results))


if __name__ == "__main__":
    main()
