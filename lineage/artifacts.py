"""The content-addressed artifact store. A file's name is the sha256 of its bytes.

Writes are atomic (temp file, fsync, rename). Reads verify the hash before returning a byte, and
models are unpickled only from bytes whose hash matches the one the registry recorded.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

from governance.errors import GovernanceError, NotFound

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
PICKLE_PROTOCOL = 5


class ArtifactIntegrityError(GovernanceError):
    status_code = 409
    code = "artifact_tampered"


def serialize_model(model: Any) -> bytes:
    return pickle.dumps(model, protocol=PICKLE_PROTOCOL)


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

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
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o444)
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

    @staticmethod
    def _digest_of(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()
