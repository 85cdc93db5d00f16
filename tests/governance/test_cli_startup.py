"""`govern` starts without the heavy libraries: neither `--help` nor `models list` imports them.
Checked on the modules loaded, never on time (machines are noisy; `bench/cli_startup.py`
measures the time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.config import Settings
from tests.support.factories import DataRepo, train_model

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("shap", "alibi", "sklearn", "dvc", "pandas", "scipy")

# Runs the CLI in a fresh interpreter, then prints which of HEAVY it imported.
PROBE = """
import json, sys
from governance.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = [m for m in {heavy!r} if m in sys.modules]
print("LOADED " + json.dumps({{"code": code, "loaded": loaded}}))
"""


def _loaded(*args: str) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("LOADED ")]
    assert lines, done.stdout + done.stderr
    result = json.loads(lines[-1].removeprefix("LOADED "))
    return int(result["code"] or 0), list(result["loaded"]), done.stdout


def test_help_imports_no_heavy_library() -> None:
    code, loaded, output = _loaded("--help")
    assert code == 0
    assert "models" in output and "serve" in output
    assert loaded == []


def test_models_list_imports_no_heavy_library(
    sqlite_only: None, env_settings: Settings, data_repo: DataRepo
) -> None:
    train_model(env_settings, data_repo)
    code, loaded, output = _loaded("models", "list")
    assert code == 0, output
    assert "credit" in output
    assert [m for m in loaded if m in HEAVY] == []
