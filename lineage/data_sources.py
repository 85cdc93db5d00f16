"""Where a dataset registration may make govern read from, or connect to.

A dataset reference comes from an API caller, and git and DVC go wherever a repository address,
or the repository's own metadata, tells them. A registration therefore carries a ``DataPolicy``:
the repository must be a local one under a data root (``GOV_DATA_ROOTS`` and the var dir) or a
remote one at an allowed origin (``GOV_DATA_REMOTE_ORIGINS``, compared exactly, never by prefix),
and so must every DVC remote and cache it names. A path outside the roots and a path with
nothing there get the same answer, so the API is no oracle of the server's disk; a URL carrying
credentials is refused and never echoed.

Pure checks: no database, no network.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, unquote, urlsplit

from core.errors import GovernanceError

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger("govern.datasets")

REPO_SCHEMES = frozenset({"http", "https", "ssh", "git"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# git's scp-like form, [user@]host:path; a '/' before the first ':' makes it a local path.
_SCP = re.compile(r"^(?:(?P<user>[^@/\s]+)@)?(?P<host>[^@/:\s]+):(?P<path>.+)$")
# One answer for "outside the roots" and "nothing there", so the API is no oracle of the disk.
NO_REPOSITORY = "no DVC repository at that location, or it is outside the allowed data roots"
CREDENTIALS = (
    "a repository URL may not carry credentials; give the server its own access (an SSH key "
    "or a git credential helper) instead"
)

Origin = tuple[str, str, int | None]


class DatasetError(GovernanceError):
    """A dataset reference that cannot be read; the message says which part is wrong.

    Messages never echo the repository address (it may hold credentials) nor anything read
    from a file DVC was not meant to read.
    """

    status_code = 422
    code = "invalid_dataset"

    def __init__(self, field_name: str, message: str, **kwargs: Any) -> None:
        super().__init__(
            f"{field_name}: {message}",
            details=[{"field": field_name, "message": message}],
            **kwargs,
        )
        self.field_name = field_name
        self.problem = message


def parse_origin(text: str) -> Origin | None:
    """``scheme://host`` or ``scheme://host:port`` as (scheme, host, port), else None."""
    parts = _split(text.strip())
    if parts is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if "@" in parts.netloc:
        return None
    return _origin(parts)


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:  # a malformed IPv6 literal, say
        return None


def _origin(parts: SplitResult) -> Origin | None:
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return None
    if not scheme or not parts.hostname or parts.hostname.startswith("-"):
        return None
    # An explicit default port is the same endpoint as none: https://h:443 is https://h.
    return scheme, parts.hostname, port if port is not None else DEFAULT_PORTS.get(scheme)


@dataclass(frozen=True)
class DataPolicy:
    """Where a dataset registration may make govern read from, or connect to.

    ``roots`` are resolved directories; ``origins`` exact (scheme, host, port) triples. Nothing
    is matched by prefix: https://git.example.com allows neither git.example.com.evil nor
    another port.
    """

    roots: tuple[Path, ...] = ()
    origins: frozenset[Origin] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> DataPolicy:
        origins = set()
        for text in settings.data_remote_origins:
            origin = parse_origin(text)
            if origin is None:
                log.warning("data_remote_origins: %r is not scheme://host[:port]; ignored", text)
            else:
                origins.add(origin)
        roots = tuple(root.resolve() for root in settings.allowed_data_roots)
        return cls(roots=roots, origins=frozenset(origins))

    def holds(self, path: Path) -> bool:
        """Whether a resolved path is one of the roots or lies under one."""
        return any(path.is_relative_to(root) for root in self.roots)

    def allows(self, origin: Origin) -> bool:
        return origin in self.origins


def is_url(repo: str) -> bool:
    """A repository git reaches over a transport (or a file:// URL), not a plain path."""
    return bool(_SCHEME.match(repo)) or (not repo.startswith("/") and bool(_SCP.match(repo)))


def check_repo(repo: str, policy: DataPolicy | None = None) -> str:
    """The repository to open: a resolved local path or a remote URL, or a DatasetError.

    With a policy (at registration) a local path must resolve under a data root and a URL must
    be at an allowed origin. Without one (a registered version read again) only the form is
    checked.
    """
    if not repo or not repo.isprintable():
        raise DatasetError("repo", "unsupported repository address")
    url = _SCHEME.match(repo)
    if url:
        scheme = url[1].lower()
        if scheme == "file":
            parts = _split(repo)
            if (
                parts is None
                or parts.netloc not in ("", "localhost")
                or parts.query
                or parts.fragment
            ):
                raise DatasetError("repo", "a file:// URL must name a path on this server")
            return _check_local(unquote(parts.path), policy)
        return _check_url(repo, scheme, policy)
    if "::" in repo:
        # git's "ext::" and other remote helpers run commands; never let data name one.
        raise DatasetError("repo", "unsupported repository address")
    scp = _SCP.match(repo)
    if scp and not repo.startswith("/"):
        return _check_scp(repo, scp, policy)
    return _check_local(repo, policy)


def _check_url(repo: str, scheme: str, policy: DataPolicy | None) -> str:
    if scheme not in REPO_SCHEMES or any(ch.isspace() for ch in repo):
        raise DatasetError(
            "repo", "unsupported repository address; use a local path, or an https, ssh or git URL"
        )
    parts = _split(repo)
    if parts is None:
        raise DatasetError("repo", "not a valid repository URL (scheme://host[:port]/path)")
    if parts.password is not None or (parts.username is not None and scheme in {"http", "https"}):
        raise DatasetError("repo", CREDENTIALS)
    if parts.query or parts.fragment:
        raise DatasetError("repo", "a repository URL may not carry a query or a fragment")
    origin = _origin(parts)
    if origin is None:
        raise DatasetError("repo", "not a valid repository URL (scheme://host[:port]/path)")
    _check_origin(origin, policy)
    return repo


def _check_scp(repo: str, scp: re.Match[str], policy: DataPolicy | None) -> str:
    if scp["user"] is not None and ":" in scp["user"]:
        raise DatasetError("repo", CREDENTIALS)
    host = scp["host"].lower()
    if host.startswith("-"):
        raise DatasetError("repo", "unsupported repository address")
    _check_origin(("ssh", host, DEFAULT_PORTS["ssh"]), policy)
    return repo


def _check_origin(origin: Origin, policy: DataPolicy | None) -> None:
    if policy is not None and not policy.allows(origin):
        raise DatasetError(
            "repo",
            "remote repositories are read only from the configured origins "
            "(GOV_DATA_REMOTE_ORIGINS), and this URL's scheme, host and port are not one of them",
        )


def _check_local(text: str, policy: DataPolicy | None) -> str:
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise DatasetError("repo", "a local repo must be an absolute path")
    resolved = _resolve(path)
    if policy is not None and (resolved is None or not policy.holds(resolved)):
        raise DatasetError("repo", NO_REPOSITORY)
    if resolved is None or not resolved.is_dir():
        raise DatasetError(
            "repo", NO_REPOSITORY if policy is not None else "no directory at that location"
        )
    if not (resolved / ".git").exists():
        raise DatasetError("repo", "that directory is not a git repository")
    if not (resolved / ".dvc").is_dir():
        raise DatasetError(
            "repo", "that directory is a git repository but not a DVC one (no .dvc/)"
        )
    return str(resolved)


def _resolve(path: Path) -> Path | None:
    """The path with every symlink and '..' resolved, or None when that fails (a loop, say)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def location_allowed(location: str, policy: DataPolicy, port: Any = None) -> bool:
    """A DVC remote or cache: a local path under a data root, or a URL at an allowed origin."""
    url = _SCHEME.match(location)
    parts = _split(location) if url else None
    if url and parts is None:
        return False
    if url and parts and url[1].lower() != "file":
        origin = _origin(parts)
        if origin is None:
            return False
        candidates = {origin}
        if port is not None:
            # An ssh remote's "port" option overrides the URL's (or the default) port.
            try:
                explicit = (origin[0], origin[1], int(port))
            except (TypeError, ValueError):
                return False
            candidates = {origin, explicit} if parts.port is not None else {explicit}
        return all(policy.allows(candidate) for candidate in candidates)
    local = Path(unquote(parts.path) if parts else location)
    if not local.is_absolute():
        return False
    resolved = _resolve(local)
    return resolved is not None and policy.holds(resolved)
