"""The content-addressed artifact store. A file's name is the sha256 of its bytes.

Writes are atomic (temp file, fsync, rename). Reads verify the hash before returning a byte, and
models are unpickled only from bytes whose hash matches the one the registry recorded.

Models are trained on applicants' data, so the store is the service user's alone: folders 0700,
artifacts 0400 (read-only too, since a content-addressed file never changes). The first store a
process opens on a root also takes group and other access away from whatever has it there, e.g.
a store written by an older release.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

from core.errors import GovernanceError, NotFound

log = logging.getLogger("govern.artifacts")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
PICKLE_PROTOCOL = 5
DIR_MODE = 0o700
FILE_MODE = 0o400

_secured: set[Path] = set()
_secured_lock = threading.Lock()


class ArtifactIntegrityError(GovernanceError):
    status_code = 409
    code = "artifact_tampered"


def serialize_model(model: Any) -> bytes:
    return pickle.dumps(model, protocol=PICKLE_PROTOCOL)


def _restrict(path: Path, mode: int) -> None:
    """Take group and other access away from ``path`` (never through a symlink)."""
    try:
        current = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(current) or not stat.S_IMODE(current) & 0o077:
        return
    try:
        os.chmod(path, mode)
    except OSError as exc:
        log.warning("%s is readable by other users and cannot be restricted: %s", path, exc)


def _secure_existing(root: Path) -> None:
    """Once per process and root: restrict every folder and artifact already in the store."""
    key = root.absolute()
    with _secured_lock:
        if key in _secured:
            return
        _secured.add(key)
        if not root.is_dir():
            return
        _restrict(root, DIR_MODE)
        for folder, dirs, files in os.walk(root):
            for name in dirs:
                _restrict(Path(folder, name), DIR_MODE)
            for name in files:
                _restrict(Path(folder, name), FILE_MODE)


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        _secure_existing(self.root)

    def path_for(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise GovernanceError(
                f"not a sha256 digest: {sha256!r}", status_code=422, code="invalid_input"
            )
        return self.root / "sha256" / sha256[:2] / sha256

    def put(self, content: bytes) -> str:
        digest = hashlib.sha256(content).hexdigest()
        target = self.path_for(digest)
        if target.exists() and self._digest_of(target) == digest:
            _restrict(target, FILE_MODE)
            return digest
        self._make_folders(target.parent)
        # mkstemp creates the file 0600 whatever the umask; it is never readable by others.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def get(self, sha256: str) -> bytes:
        path = self.path_for(sha256)
        if not path.exists():
            raise NotFound(f"artifact {sha256} is missing from the store at {self.root}")
        content = path.read_bytes()
        actual = hashlib.sha256(content).hexdigest()
        if actual != sha256:
            raise ArtifactIntegrityError(
                f"artifact {sha256} was altered: its bytes now hash to {actual}; "
                "refusing to load it",
                details={"expected_sha256": sha256, "actual_sha256": actual},
            )
        return content

    def load_model(self, sha256: str) -> Any:
        content = self.get(sha256)
        # Safe only because the bytes were verified against the registry's hash just above.
        return pickle.loads(content)  # noqa: S301

    def _make_folders(self, folder: Path) -> None:
        """Create the root, ``sha256`` and the prefix folder, each 0700 (``mkdir -p`` would give
        the upper ones the umask's mode)."""
        self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        for path in (folder.parent, folder):
            path.mkdir(mode=DIR_MODE, exist_ok=True)
        for path in (self.root, folder.parent, folder):
            _restrict(path, DIR_MODE)

    @staticmethod
    def _digest_of(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()
