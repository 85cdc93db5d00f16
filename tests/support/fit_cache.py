"""One real fit per distinct fixture model per test run, shared by every test and both databases.

A training run's fit happens in a fresh child of the zygote (``lineage.fresh``): the runner hands
it the task, the determinism variables, the resolved spec and the data version's bytes, and gets
back a ``Trained`` (the fitted outcome, the artifact bytes as that child serialized them, the
fingerprint). That call depends on nothing else but the installed libraries, so its result can be
looked up by a key over exactly those inputs.

Fixtures that need "a trained model" (not tests of training) train inside ``FIT_CACHE.reuse()``:
the run is created, claimed, its data read again by commit and checked, its artifact stored and
its version registered with its lineage by the real service and runner (``lineage.runner``, then
``lineage.registration``, the one way a version comes to be), in each test's own database; only
the fit is looked up. The first test to need a model fits it for real, in the
zygote, and stores what the child returned. Calls from other threads (the app's job executor)
and rebuilds always run for real. ``tests/lineage/test_fit_cache.py`` trains the fixtures' specs
for real and compares them with the cached ones; rebuilds of fixture models compare their bytes.

When the suite runs in several processes (pytest-xdist), they share one store on disk
(``share``): the first process to need a fit takes its file's lock, fits and writes it, and the
others wait for that lock and read what it wrote, so each distinct model is fitted once per run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lineage.environment import capture_environment
from lineage.fit_tasks import Trained
from lineage.fresh import ZYGOTE, Zygote

# Where the data lives (repository, revision, row id) differs per test repository and database;
# what the fit reads is the bytes, keyed by their hash instead.
_LOCATION = ("id", "repo", "rev")


def fit_key(
    recorded_env: dict[str, str], resolved: dict[str, Any], content: bytes, fmt: str
) -> str:
    """The content address of a training fit: the resolved spec (its data by content hash), the
    data's format, the determinism variables it runs with, Python, the platform and every
    installed package with its version."""
    spec = dict(resolved)
    spec["dataset"] = {k: v for k, v in dict(resolved["dataset"]).items() if k not in _LOCATION}
    environment = capture_environment()
    environment.pop("executable", None)
    environment["env"] = dict(recorded_env)
    payload = {
        "spec": spec,
        "data": {
            "sha256": hashlib.sha256(content).hexdigest(),
            "md5": hashlib.md5(content, usedforsecurity=False).hexdigest(),
            "format": fmt,
        },
        "environment": environment,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class FitCache:
    """Training fits by content address, for the threads inside ``reuse()``."""

    def __init__(self, zygote: Zygote) -> None:
        self._zygote = zygote
        self._real = zygote.run
        self._fits: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._reusing: Counter[int] = Counter()  # thread -> blocks it is inside
        self._shared: Path | None = None  # the store the suite's processes share, if any
        self.fitted = 0  # fits run for real and stored
        self.reused = 0  # fits answered from the store

    def __len__(self) -> int:
        return len(self._fits)

    def share(self, directory: Path) -> None:
        """Keep fits in ``directory`` too, for the suite's other processes."""
        directory.mkdir(parents=True, exist_ok=True)
        self._shared = directory

    @contextmanager
    def reuse(self) -> Iterator[FitCache]:
        """Within this block, training fits started by this thread come from the cache."""
        thread = threading.get_ident()
        with self._lock:
            if not self._reusing:
                # An instance attribute: it shadows Zygote.run for this one object only.
                self._zygote.run = self._run  # type: ignore[method-assign]
            self._reusing[thread] += 1
        try:
            yield self
        finally:
            with self._lock:
                self._reusing[thread] -= 1
                if not self._reusing[thread]:
                    del self._reusing[thread]
                if not self._reusing:
                    del self._zygote.run

    def _run(
        self, task: str, recorded_env: dict[str, str], args: tuple[Any, ...], **kw: Any
    ) -> Any:
        if task != "train" or threading.get_ident() not in self._reusing:
            return self._real(task, recorded_env, args, **kw)
        resolved, content, fmt = args
        key = fit_key(recorded_env, resolved, content, fmt)
        stored = self._fits.get(key)
        if stored is None:
            stored = self._fit(key, lambda: self._real(task, recorded_env, args, **kw))
            self._fits[key] = stored
        else:
            self.reused += 1
        # A copy for each caller: nothing a test does to its outcome reaches the next test.
        # Pickled in this test run, by this process or another of the suite's, from what the
        # zygote's child returned.
        copy: Trained = pickle.loads(stored)
        return copy

    def _fit(self, key: str, fit: Callable[[], Any]) -> bytes:
        """Fit for real, or read the fit another of the suite's processes made."""
        if self._shared is None:
            return self._pickled(fit())
        path = self._shared / f"{key}.pickle"
        with open(self._shared / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # held while fitting: the others wait, then read
            if path.exists():
                self.reused += 1
                return path.read_bytes()
            stored = self._pickled(fit())
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_bytes(stored)
            partial.replace(path)
            return stored

    def _pickled(self, trained: Any) -> bytes:
        assert isinstance(trained, Trained)
        self.fitted += 1
        return pickle.dumps(trained, protocol=5)


FIT_CACHE = FitCache(ZYGOTE)
