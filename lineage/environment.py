"""What the code ran on: Python, platform, every installed package, and govern's own commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from core import __version__

_SOURCE_DIR = Path(__file__).resolve().parent.parent
# Variables that can change what a fit produces; recorded at training, restored for a rebuild.
DETERMINISM_ENV = ("PYTHONHASHSEED", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@lru_cache(maxsize=1)
def installed_packages() -> dict[str, str]:
    """Read once per process: scanning package metadata is slow, and the set loaded does not
    change under a running process."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower().replace("_", "-")] = dist.version
    return dict(sorted(packages.items()))


def code_version() -> dict[str, Any]:
    info: dict[str, Any] = {"govern_version": __version__, "git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            check=False,
            cwd=_SOURCE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                check=False,
                cwd=_SOURCE_DIR,
                capture_output=True,
                text=True,
                timeout=5,
            )
            info["git_dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def capture_environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "executable": sys.executable,
        "cpu_count": os.cpu_count(),
        "env": {k: os.environ[k] for k in DETERMINISM_ENV if k in os.environ},
        "packages": dict(installed_packages()),
    }


def diff_environments(recorded: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Every package whose version differs, plus Python and platform."""
    old = recorded.get("packages", {})
    new = current.get("packages", {})
    packages = {
        name: {"recorded": old.get(name), "current": new.get(name)}
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    }
    top: dict[str, Any] = {
        key: {"recorded": recorded.get(key), "current": current.get(key)}
        for key in ("python", "implementation", "platform", "machine", "cpu_count", "env")
        if key in recorded and recorded.get(key) != current.get(key)
    }
    return {"packages": packages, **top}
