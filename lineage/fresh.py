"""Fresh processes for training and rebuilds, without paying the imports for each one.

A fit must run in a process that shares no state with the server, and that can be stopped: a
rebuild must not see the server's caches or random state, and a fit that runs too long or is
cancelled must really stop, which a thread cannot be made to do. Starting a new interpreter for
each fit costs seconds of imports (scikit-learn, pandas, pydantic), more than the demo model's
whole training. So one clean interpreter, the *zygote*, is started with ``python -m
lineage.fresh``: it imports the training code once and never runs any of it. For each job it
forks a child at lower CPU priority (serving comes first), which runs one task, writes its result
to a file and exits. The parent waits with a deadline and a stop check, and kills the child when
either says so. (``multiprocessing``'s forkserver does the same, but re-runs the parent's main
script in every child.)

Protocol on the zygote's stdin/stdout, one line each: ``<task>\\t<request path>\\t<result
path>\\t<progress path>`` in; ``started <pid>`` out when the child exists, then ``exit <code>``
when it has ended. Request, result and progress files are written and read only by this module,
in a temporary directory of its own. The task is a name from ``TASKS``, never a path from data.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import GovernanceError
from lineage.environment import DETERMINISM_ENV

_ROOT = Path(__file__).resolve().parent.parent
# The fits run below the server's priority, so a long one cannot slow predict down.
CHILD_NICENESS = 10
POLL_S = 0.25
STOP_CHECK_S = 1.0
TASKS = ("train", "rebuild")


class FreshProcessError(Exception):
    pass


class JobStopped(Exception):
    """The child was killed: ``code`` is ``cancelled`` or ``timeout``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Progress = Callable[[float, str], None]
StopCheck = Callable[[], str | None]


def current_env() -> dict[str, str]:
    """This process's determinism variables: what a fit here would run (and record) with."""
    return {k: os.environ[k] for k in DETERMINISM_ENV if k in os.environ}


class Zygote:
    """The zygote runs with the determinism variables (thread counts, hash seed) a job asks
    for, not the caller's: a rebuild asks for the ones its training recorded (a Ray worker sets
    OMP_NUM_THREADS=1, and scikit-learn's histogram gradient boosting stores its thread count in
    the fitted model); a training run asks for the server's own, which it records."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] = {}
        self._lock = threading.Lock()
        self._pending = b""
        self._atexit = False

    def start(self, recorded_env: dict[str, str] | None = None) -> None:
        """Start the zygote if it is not running; returns at once (it imports meanwhile)."""
        with self._lock:
            self._start(recorded_env or {})

    def _start(self, recorded_env: dict[str, str]) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._env != recorded_env:
            self._stop()
        if self._proc is None or self._proc.poll() is not None:
            paths = [str(_ROOT), os.environ.get("PYTHONPATH", "")]
            env = {k: v for k, v in os.environ.items() if k not in DETERMINISM_ENV}
            env.update(recorded_env)
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
            self._env = dict(recorded_env)
            self._pending = b""
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "lineage.fresh"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                cwd=_ROOT,
            )
            if not self._atexit:
                atexit.register(self.stop)
                self._atexit = True
        return self._proc

    def run(
        self,
        task: str,
        recorded_env: dict[str, str],
        args: tuple[Any, ...],
        *,
        deadline: float | None = None,
        should_stop: StopCheck | None = None,
        progress: Progress | None = None,
    ) -> Any:
        """``task`` in a new child of the zygote; its return value, or ``JobStopped`` when the
        deadline (``time.monotonic()``) passes or ``should_stop`` returns a reason, the task's
        own ``GovernanceError`` (its code and details kept), or ``FreshProcessError`` when the
        task failed otherwise or the child died."""
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}")
        with self._lock, tempfile.TemporaryDirectory(prefix="govern-fit-") as tmp:
            proc = self._start(recorded_env)
            request, result = Path(tmp) / "request.pkl", Path(tmp) / "result.pkl"
            progress_file = Path(tmp) / "progress.jsonl"
            request.write_bytes(pickle.dumps(args, protocol=5))
            assert proc.stdin is not None
            pid: int | None = None
            try:
                proc.stdin.write(f"{task}\t{request}\t{result}\t{progress_file}\n".encode())
                proc.stdin.flush()
                pid = int(self._expect(proc, "started", None))
                stopped = self._wait(proc, pid, deadline, should_stop, progress, progress_file)
            except (BrokenPipeError, OSError, ValueError) as exc:
                self._stop()
                raise FreshProcessError(f"the zygote process is gone: {exc}") from None
            except BaseException:
                # A callback raised (``progress``, or ``should_stop`` reading a database that
                # went away) with the child still running: kill it, and start the zygote afresh,
                # or the next task would read this child's exit line as its own answer.
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self._stop()
                raise
            if stopped is not None:
                raise stopped
            if not result.exists():
                raise FreshProcessError("the training process died before writing a result")
            # Written a moment ago by our own child process into our own temporary directory.
            status, value = pickle.loads(result.read_bytes())  # noqa: S301
        if status == "refused":
            raise GovernanceError(value["message"], code=value["code"], details=value["details"])
        if status != "ok":
            raise FreshProcessError(value)
        return value

    def _wait(
        self,
        proc: subprocess.Popen[bytes],
        pid: int,
        deadline: float | None,
        should_stop: StopCheck | None,
        progress: Progress | None,
        progress_file: Path,
    ) -> JobStopped | None:
        """Wait for the child's exit, forwarding its progress; kill it if it must stop."""
        stopped: JobStopped | None = None
        seen = 0
        checked = 0.0
        while True:
            line = self._line(proc, POLL_S)
            seen = _forward_progress(progress_file, seen, progress)
            if line is not None:
                if not line.startswith("exit "):
                    raise ValueError(f"unexpected answer {line!r}")
                return stopped
            if stopped is not None:
                continue  # killed: wait for the zygote to reap it and say so
            if deadline is not None and time.monotonic() > deadline:
                stopped = JobStopped("timeout", "the job ran past its time limit and was stopped")
            elif should_stop is not None and time.monotonic() - checked >= STOP_CHECK_S:
                checked = time.monotonic()  # a database read: once a second is enough
                if (reason := should_stop()) is not None:
                    stopped = JobStopped("cancelled", reason)
            if stopped is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _expect(self, proc: subprocess.Popen[bytes], word: str, timeout: float | None) -> str:
        line = self._line(proc, timeout)
        if line is None or not line.startswith(word + " "):
            raise ValueError(f"expected {word!r}, got {line!r}")
        return line.split(" ", 1)[1]

    def _line(self, proc: subprocess.Popen[bytes], timeout: float | None) -> str | None:
        """One line from the zygote, or None if none arrived within ``timeout`` seconds. Reads
        the pipe unbuffered, so that waiting on it never misses a line already read."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        end = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = None if end is None else max(0.0, end - time.monotonic())
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise OSError("the zygote closed its output")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode()

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None
        self._pending = b""


def _forward_progress(path: Path, seen: int, progress: Progress | None) -> int:
    """Report the child's newest progress line, if it wrote any since the last look."""
    if progress is None:
        return seen
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return seen
    complete = [line for line in lines if line.endswith("}")]
    if len(complete) > seen:
        latest = json.loads(complete[-1])
        progress(float(latest["fraction"]), str(latest["message"]))
    return len(complete)


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


def _child(task: str, request: str, result: str, progress_path: str) -> None:
    """One task in a forked child: its outcome to ``result``, then exit without running any
    cleanup of the zygote's."""
    from lineage import fit_tasks

    code = 0
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)

    def report(fraction: float, message: str) -> None:
        with open(progress_path, "a") as handle:
            handle.write(json.dumps({"fraction": fraction, "message": message}) + "\n")

    try:
        args = pickle.loads(Path(request).read_bytes())  # noqa: S301 - our own request file
        runner = fit_tasks.train if task == "train" else fit_tasks.rebuild
        outcome: tuple[str, Any] = ("ok", runner(*args, report=report))
    except GovernanceError as exc:  # a refusal with a code and details (data cannot split)
        outcome = ("refused", {"code": exc.code, "message": exc.message, "details": exc.details})
        code = 1
    except BaseException as exc:  # reported to the parent as text
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        outcome = ("error", f"{type(exc).__name__}: {message}")
        code = 1
    try:
        Path(result).write_bytes(pickle.dumps(outcome, protocol=5))
    finally:
        os._exit(code)


def _serve() -> None:
    import importlib

    from lineage import fit_tasks  # noqa: F401 - imported once here, inherited by every child
    from lineage.environment import installed_packages
    from lineage.spec import ESTIMATORS

    installed_packages()  # read once here, inherited by every child
    for module in (*(c.rsplit(".", 1)[0] for c in ESTIMATORS), *_WARM_IMPORTS):
        with contextlib.suppress(ImportError):  # an optional extra this installation lacks
            importlib.import_module(module)
    for line in sys.stdin:
        task, request, result, progress_path = line.rstrip("\n").split("\t")
        if task not in TASKS:
            sys.stdout.write("refused\n")
            sys.stdout.flush()
            continue
        pid = os.fork()
        if pid == 0:
            _child(task, request, result, progress_path)
        sys.stdout.write(f"started {pid}\n")
        sys.stdout.flush()
        _pid, status = os.waitpid(pid, 0)
        sys.stdout.write(f"exit {os.waitstatus_to_exitcode(status)}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
