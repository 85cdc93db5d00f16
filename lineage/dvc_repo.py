"""Create and update DVC data repositories: for the demo, for tests, and for a user's first CSV.

Two pitfalls are avoided on purpose: the remote is configured (and committed) before any data
is, so that ``dvc push`` uploads every version; and its URL is absolute, because a relative one
is resolved against the wrong directory when an old revision is read.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def _quiet_dvc() -> None:
    # DVC logs hints meant for its own CLI ("To track the changes with git, run ..."), and its
    # logger setup runs on import, so this must come after DVC is imported.
    logging.getLogger("dvc").setLevel(logging.WARNING)


_GIT_ENV = {
    "GIT_AUTHOR_NAME": "govern",
    "GIT_AUTHOR_EMAIL": "govern@localhost",
    "GIT_COMMITTER_NAME": "govern",
    "GIT_COMMITTER_EMAIL": "govern@localhost",
}


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in _GIT_ENV.items()}}
    result = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def init_data_repo(repo: Path, remote: Path) -> Path:
    """git init + dvc init + an absolute local remote, committed before any data."""
    from dvc.repo import Repo

    _quiet_dvc()
    repo = repo.resolve()
    remote = remote.resolve()
    repo.mkdir(parents=True, exist_ok=True)
    remote.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    dvc_repo = Repo.init(str(repo))
    try:
        with dvc_repo.config.edit() as config:
            config["core"]["analytics"] = False
            config["core"]["remote"] = "storage"
            config["remote"]["storage"] = {"url": str(remote)}
    finally:
        dvc_repo.close()
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", "Initialise DVC with an absolute local remote")
    return repo


def commit_data(repo: Path, relpath: str, content: bytes, message: str, push: bool = True) -> str:
    """Write ``content`` to ``relpath``, track it with DVC, commit, push; return the commit sha."""
    from dvc.repo import Repo

    _quiet_dvc()
    target = repo / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    dvc_repo = Repo(str(repo))
    try:
        dvc_repo.add(str(target))
        if push:
            dvc_repo.push()
    finally:
        dvc_repo.close()
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def clear_cache(repo: Path) -> None:
    """Delete the local DVC cache, so that reads must come from the remote."""
    shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)
