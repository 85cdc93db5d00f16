"""Reading one version of a tabular file from a DVC-tracked git repository.

No database here: this turns (repo, path, rev) into bytes plus the facts that pin them down
(commit sha, DVC md5, sha256, rows, columns), or into an error that says what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from governance.errors import GovernanceError, InvalidInput

# DVC phones home for analytics unless told not to, and this service never reaches the internet.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_URL = re.compile(r"^(https?|ssh|git|file)://[^\s]+$")
_SCP = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")
_REV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/~^@{}-]{0,199}$")


class DatasetError(GovernanceError):
    """A dataset reference that cannot be read; the message says which part is wrong."""

    status_code = 422
    code = "invalid_dataset"

    def __init__(self, field_name: str, message: str, **kwargs: Any) -> None:
        super().__init__(message, details=[{"field": field_name, "message": message}], **kwargs)
        self.field_name = field_name


class DataMismatch(DatasetError):
    """The bytes read are not the ones DVC recorded; ``read`` holds what they hash to."""

    def __init__(self, field_name: str, message: str, read: dict[str, str]) -> None:
        super().__init__(field_name, message, status_code=409, code="data_mismatch")
        self.read = read


@dataclass(frozen=True)
class Snapshot:
    """The bytes of one data version and what identifies them."""

    repo: str
    path: str
    rev: str
    commit: str
    md5: str
    sha256: str
    size_bytes: int
    format: str
    row_count: int
    columns: list[dict[str, str]]
    content: bytes = field(repr=False)

    def frame(self) -> pd.DataFrame:
        return parse_table(self.content, self.format)


def is_url(repo: str) -> bool:
    return bool(_URL.match(repo) or _SCP.match(repo))


def check_repo(repo: str) -> str:
    if "::" in repo:
        # git's "ext::" and other remote helpers run commands; never let data name one.
        raise DatasetError("repo", f"unsupported repository address {repo!r}")
    if is_url(repo):
        return repo
    path = Path(repo).expanduser()
    if not path.is_absolute():
        raise DatasetError("repo", f"a local repo must be an absolute path, got {repo!r}")
    if not path.is_dir():
        raise DatasetError("repo", f"no directory at {repo!r}")
    if not (path / ".git").exists():
        raise DatasetError("repo", f"{repo!r} is not a git repository")
    if not (path / ".dvc").is_dir():
        raise DatasetError("repo", f"{repo!r} is a git repository but not a DVC one (no .dvc/)")
    return str(path.resolve())


def check_path(path: str) -> str:
    pure = PurePosixPath(path)
    if "\\" in path or "\x00" in path or pure.is_absolute() or ".." in pure.parts:
        raise DatasetError("path", f"path must be relative to the repo, without '..': {path!r}")
    if pure.suffix.lower() not in FORMATS:
        raise DatasetError(
            "path", f"unsupported file type {pure.suffix!r}; use one of {sorted(FORMATS)}"
        )
    return pure.as_posix()


def check_rev(rev: str) -> str:
    if not _REV.match(rev):
        raise DatasetError("rev", f"not a valid git revision: {rev!r}")
    return rev


def parse_table(content: bytes, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(content))
    return pd.read_parquet(io.BytesIO(content))


def describe_columns(frame: pd.DataFrame) -> list[dict[str, str]]:
    return [{"name": str(name), "dtype": str(dtype)} for name, dtype in frame.dtypes.items()]


def read_snapshot(repo: str, path: str, rev: str) -> Snapshot:
    """Resolve ``rev``, find the DVC output for ``path`` and read its bytes at that commit.

    The bytes come through DVC's own file system, the same one ``dvc.api.open`` uses, so a
    version missing from the local cache is fetched from the repo's remote.
    """
    repo = check_repo(repo)
    path = check_path(path)
    rev = check_rev(rev)

    from dvc.exceptions import DvcException, OutputNotFoundError
    from dvc.repo import Repo
    from dvc.scm import CloneError, RevError, SCMError

    try:
        with Repo.open(repo, rev=rev, subrepos=False, uninitialized=False) as dvc_repo:
            commit = dvc_repo.scm.resolve_rev(rev)
            try:
                outs = dvc_repo.find_outs_by_path(path)
            except OutputNotFoundError:
                raise DatasetError(
                    "path", f"{path!r} is not tracked by DVC at {rev} ({commit[:12]})"
                ) from None
            md5 = outs[0].hash_info.value if outs and outs[0].hash_info else None
            if not md5:
                raise DatasetError("path", f"{path!r} has no recorded md5 in DVC at {rev}")
            try:
                with dvc_repo.dvcfs.open(path, "rb") as handle:
                    content = handle.read()
            except FileNotFoundError:
                raise DatasetError(
                    "path",
                    f"the data for {path!r} at {rev} (md5 {md5}) is in neither the local DVC "
                    "cache nor the remote; push it with `dvc push` from a copy that has it",
                    status_code=409,
                    code="data_unavailable",
                ) from None
    except RevError:
        raise DatasetError("rev", f"unknown revision {rev!r} in {repo}") from None
    except CloneError:
        raise DatasetError("repo", f"cannot clone {repo!r}") from None
    except SCMError as exc:
        raise DatasetError("repo", f"{repo!r}: {exc}") from None
    except DatasetError:
        raise
    except DvcException as exc:
        raise DatasetError("path", f"DVC could not read {path!r} at {rev}: {exc}") from None

    actual = hashlib.md5(content, usedforsecurity=False).hexdigest()
    if actual != md5:
        raise DataMismatch(
            "path",
            f"the bytes read for {path!r} do not match the md5 DVC recorded ({md5}); "
            f"they hash to {actual}: the cache or the remote holds altered data",
            read={"md5": actual, "sha256": hashlib.sha256(content).hexdigest()},
        )
    return snapshot_from_bytes(content, repo=repo, path=path, rev=rev, commit=commit, md5=md5)


def snapshot_from_bytes(
    content: bytes, *, repo: str, path: str, rev: str, commit: str, md5: str
) -> Snapshot:
    fmt = FORMATS[PurePosixPath(path).suffix.lower()]
    if not content.strip():
        raise DatasetError("path", f"{path!r} at {rev} is empty")
    try:
        frame = parse_table(content, fmt)
    except Exception as exc:
        raise DatasetError(
            "path", f"{path!r} at {rev} is not a readable {fmt} table: {exc}"
        ) from None
    if frame.empty or len(frame.columns) == 0:
        raise DatasetError("path", f"{path!r} at {rev} has no rows")
    return Snapshot(
        repo=repo,
        path=path,
        rev=rev,
        commit=commit,
        md5=md5,
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        format=fmt,
        row_count=len(frame),
        columns=describe_columns(frame),
        content=content,
    )


def check_columns(snapshot_columns: list[dict[str, str]], required: dict[str, str]) -> None:
    """``required`` maps a column to the spec field that needs it; a missing one is an error."""
    present = {c["name"] for c in snapshot_columns}
    missing = [(col, where) for col, where in required.items() if col not in present]
    if missing:
        raise InvalidInput(
            "the dataset lacks columns the spec names: " + ", ".join(c for c, _ in missing),
            details=[
                {"field": where, "message": f"column {col!r} is not in the dataset"}
                for col, where in missing
            ],
        )
