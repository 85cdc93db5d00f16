"""Reading one version of a tabular file from a DVC-tracked git repository.

No database here: this turns (repo, path, rev) into bytes plus the facts that pin them down
(commit sha, DVC md5, sha256, rows, columns), or into an error that says what is wrong.

Every md5 DVC reports is checked to be an md5 before a byte is read: DVC turns it into a cache
path, and ``md5: ../../../etc/passwd`` would read any file on the server. A registration also
carries a ``DataPolicy`` (``lineage.data_sources``) that its repository, DVC remotes, cache and
import sources must obey. Reads of a registered version (rebuilds, explanations, training) need
no policy: that commit passed it when it was registered.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from core.errors import InvalidInput
from lineage.data_sources import DataPolicy, DatasetError, check_repo, is_url, location_allowed

# DVC phones home for analytics unless told not to, and this service never reaches the internet.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

log = logging.getLogger("govern.datasets")

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_DIR_MD5 = re.compile(r"^[0-9a-f]{32}\.dir$")
_REV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/~^@{}-]{0,199}$")


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


def read_snapshot(repo: str, path: str, rev: str, policy: DataPolicy | None = None) -> Snapshot:
    """Resolve ``rev``, find the DVC output for ``path`` and read its bytes at that commit.

    The bytes come through DVC's own file system, the same one ``dvc.api.open`` uses, so a
    version missing from the local cache is fetched from the repo's remote. With a ``policy``
    (registration), the repository's DVC remotes, cache and import sources must obey it too.
    """
    repo = check_repo(repo, policy)
    path = check_path(path)
    rev = check_rev(rev)

    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.scm import CloneError, RevError, SCMError

    try:
        with Repo.open(repo, rev=rev, subrepos=False, uninitialized=False) as dvc_repo:
            commit = dvc_repo.scm.resolve_rev(rev)
            md5, out = _recorded_md5(dvc_repo, path, rev, commit)
            if policy is not None:
                _check_sources(dvc_repo, out, path, policy, local=not is_url(repo))
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
        raise DatasetError("rev", f"unknown revision {rev!r} in that repository") from None
    except CloneError:
        raise DatasetError("repo", "cannot clone that repository") from None
    except SCMError as exc:
        log.info("git could not open a dataset repository: %s", exc)
        raise DatasetError("repo", "git cannot read that repository") from None
    except DatasetError:
        raise
    except DvcException as exc:
        # DVC's own message may quote server paths; the log keeps it, the caller gets its kind.
        log.info("DVC could not read %r at %s: %s", path, rev, exc)
        raise DatasetError(
            "path", f"DVC could not read {path!r} at {rev} ({type(exc).__name__})"
        ) from None

    actual = hashlib.md5(content, usedforsecurity=False).hexdigest()
    if actual != md5:
        raise DataMismatch(
            "path",
            f"the bytes read for {path!r} do not match the md5 DVC recorded ({md5}); "
            f"they hash to {actual}: the cache or the remote holds altered data",
            read={"md5": actual, "sha256": hashlib.sha256(content).hexdigest()},
        )
    return snapshot_from_bytes(content, repo=repo, path=path, rev=rev, commit=commit, md5=md5)


def _recorded_md5(dvc_repo: Any, path: str, rev: str, commit: str) -> tuple[str, Any]:
    """The md5 DVC recorded for ``path`` and its output, once every recorded md5 is one.

    DVC reads ``<cache>/files/md5/<md5[:2]>/<md5[2:]>``, so a value that is not hex digits is a
    path of the attacker's choosing; nothing is read until all of them are checked.
    """
    from dvc.exceptions import OutputNotFoundError

    try:
        outs = dvc_repo.find_outs_by_path(path)
    except OutputNotFoundError:
        raise DatasetError(
            "path", f"{path!r} is not tracked by DVC at {rev} ({commit[:12]})"
        ) from None
    out = outs[0]
    value = out.hash_info.value if out.hash_info else None
    if value and not _MD5.match(value):
        if _DIR_MD5.match(value):
            raise DatasetError(
                "path",
                f"{path!r} is inside a directory DVC tracks as a whole; track the file itself",
            )
        raise DatasetError(
            "path", f"the md5 DVC records for {path!r} at {rev} is not an md5 digest; refused"
        )
    if not value:
        raise DatasetError("path", f"{path!r} has no recorded md5 in DVC at {rev}")
    for other in dvc_repo.index.outs:
        recorded = other.hash_info.value if other.hash_info else None
        if recorded and not (_MD5.match(recorded) or _DIR_MD5.match(recorded)):
            raise DatasetError(
                "repo",
                f"at {rev} the DVC output {str(other)!r} records a hash that is not an md5 "
                "digest; govern reads nothing from that revision",
            )
    return value, out


def _check_sources(dvc_repo: Any, out: Any, path: str, policy: DataPolicy, *, local: bool) -> None:
    """Every place DVC could fetch from or cache to at this revision obeys the policy."""
    remotes = dvc_repo.config.get("remote", {})
    for name, options in remotes.items():
        urls = [str(v) for k, v in options.items() if k == "url" or k.endswith("url")]
        port = options.get("port")
        if not all(location_allowed(url, policy, port) for url in urls):
            raise DatasetError(
                "repo",
                f"the DVC remote {name!r} at that revision is neither under a data root nor "
                "at an allowed origin",
            )
    if local:
        caches = [dvc_repo.cache.local.path, dvc_repo.cache.legacy.path]
        if not all(location_allowed(str(cache), policy) for cache in caches):
            raise DatasetError(
                "repo", "the DVC cache directory at that revision is outside the data roots"
            )
    if out.stage.is_import:
        # An import's bytes come from its source (another repo or a URL), not from a remote.
        raise DatasetError(
            "path",
            f"{path!r} is imported into this repository by DVC; register it from its source",
        )


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
