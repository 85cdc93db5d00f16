"""Fresh processes for rebuilds, without paying the imports for each one.

A rebuild must fit in a process that shares no state with the server. Starting a new interpreter
for each costs seconds of imports (scikit-learn, pandas, pydantic), more than the demo model's
whole training. So one clean interpreter, the *zygote*, is started with ``python -m lineage.fresh``:
it imports the training code once and never runs any of it. For each rebuild it forks a child,
which fits and writes its result to a file, then exits. Every fit therefore runs in a process
that has seen nothing but imports, and no two fits share a process. (``multiprocessing``'s
forkserver does the same, but re-runs the parent's main script in every child.)

Protocol on the zygote's stdin/stdout, one line each way per job: ``<request path>\\t<result
path>`` in, the child's exit code out. Request and result are pickles written and read only by
this module.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from lineage.environment import DETERMINISM_ENV

_ROOT = Path(__file__).resolve().parent.parent


class FreshProcessError(Exception):
    pass


class Zygote:
    """The zygote runs with the determinism variables (thread counts, hash seed) the training
    recorded, not the caller's: a Ray worker sets OMP_NUM_THREADS=1, and scikit-learn's
    histogram gradient boosting stores its thread count in the fitted model."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._env: dict[str, str] = {}
        self._lock = threading.Lock()

    def start(self, recorded_env: dict[str, str] | None = None) -> None:
        """Start the zygote if it is not running; returns at once (it imports meanwhile)."""
        with self._lock:
            self._start(recorded_env or {})

    def _start(self, recorded_env: dict[str, str]) -> subprocess.Popen[str]:
        if self._proc is not None and self._env != recorded_env:
            self._stop()
        if self._proc is None or self._proc.poll() is not None:
            paths = [str(_ROOT), os.environ.get("PYTHONPATH", "")]
            env = {k: v for k, v in os.environ.items() if k not in DETERMINISM_ENV}
            env.update(recorded_env)
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
            self._env = dict(recorded_env)
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "lineage.fresh"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=_ROOT,
            )
        return self._proc

    def fit(self, recorded_env: dict[str, str], *args: Any) -> Any:
        """``rebuild_worker.fit(*args)`` in a new child of the zygote."""
        with self._lock, tempfile.TemporaryDirectory(prefix="govern-rebuild-") as tmp:
            proc = self._start(recorded_env)
            request, result = Path(tmp) / "request.pkl", Path(tmp) / "result.pkl"
            request.write_bytes(pickle.dumps(args, protocol=5))
            assert proc.stdin is not None
            assert proc.stdout is not None
            try:
                proc.stdin.write(f"{request}\t{result}\n")
                proc.stdin.flush()
                answer = proc.stdout.readline()
            except (BrokenPipeError, OSError) as exc:
                raise FreshProcessError(f"the zygote process is gone: {exc}") from None
            if not answer:
                raise FreshProcessError("the zygote process exited before answering")
            if not result.exists():
                raise FreshProcessError(
                    f"the training process died (exit code {answer.strip()}) before writing "
                    "a result"
                )
            # Written a moment ago by our own child process into our own temporary directory.
            status, value = pickle.loads(result.read_bytes())  # noqa: S301
        if status != "ok":
            raise FreshProcessError(value)
        return value

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None


ZYGOTE = Zygote()


# Imported lazily by a first fit (the estimator's own module, dataframe interop, joblib's
# thread pool); imported in the zygote instead, so that each child does not pay for them.
# Importing runs no fit and starts no thread, so the zygote stays clean to fork.
_WARM_IMPORTS = (
    "multiprocessing.dummy",
    "narwhals._pandas_like.dataframe",
    "narwhals._pandas_like.namespace",
    "narwhals.stable.v2._namespace",
)


def _serve() -> None:
    import contextlib
    import importlib

    from lineage import rebuild_worker
    from lineage.environment import installed_packages
    from lineage.spec import ESTIMATORS

    installed_packages()  # read once here, inherited by every child
    for module in (*(c.rsplit(".", 1)[0] for c in ESTIMATORS), *_WARM_IMPORTS):
        with contextlib.suppress(ImportError):  # an optional extra this installation lacks
            importlib.import_module(module)
    for line in sys.stdin:
        request, result = line.rstrip("\n").split("\t")
        pid = os.fork()
        if pid == 0:  # the child: one fit, then exit without running any cleanup of ours
            code = 0
            try:
                outcome: tuple[str, Any] = (
                    "ok",
                    rebuild_worker.fit(*pickle.loads(Path(request).read_bytes())),  # noqa: S301
                )
            except BaseException as exc:  # reported to the parent as text
                message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                outcome = ("error", f"{type(exc).__name__}: {message}")
                code = 1
            try:
                Path(result).write_bytes(pickle.dumps(outcome, protocol=5))
            finally:
                os._exit(code)
        _pid, status = os.waitpid(pid, 0)
        sys.stdout.write(f"{os.waitstatus_to_exitcode(status)}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
