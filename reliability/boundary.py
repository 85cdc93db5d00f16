"""The trust-boundary attacks of issue 16, one or more cases each, against the live server.

An independent review, holding one low-privilege key, found that an upload could run code, that
work was done before authentication, that one caller's bad string failed other callers' commits,
that routes could point at failed versions, that callers chose metric labels, that a dataset
reference read server files, that jobs and explanations had no cost bound, that appeals tooling
could walk rebuild ids, and that CSV exports carried formulas. Each case here replays one of
those attacks and says what the fixed service must answer; ``post_checks`` then proves what a
status alone cannot (no file written, no connection made, no label added, nothing lost).
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reliability.attackers import alias_bomb
from reliability.cases import Case
from reliability.world import World, scalar

CATEGORY = "issue 16 attacks"
MB = 1024 * 1024
UPLOAD = "/api/v1/models/hostile-skops/versions"
PREDICT = "/api/v1/endpoints/credit/predict"


class Listener:
    """A local TCP port that records every connection made to it: a dataset URL naming it must
    make the server connect to nothing."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port: int = self._server.getsockname()[1]
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._server.close()


@dataclass
class Setup:
    """What the cases need, made before the server starts; ``close`` removes it."""

    outside: Path  # a folder outside every data root
    md5_repo: Path  # a git+DVC repo under the var dir whose .dvc names a server file as its md5
    outside_repo: Path  # a real git+DVC repo outside the roots
    remote_repo: Path  # a repo under the var dir whose DVC remote is the listener, cache empty
    secret: Path  # the server file the md5 points at
    secret_token: str
    listener: Listener
    upload: dict[str, Any]  # a skops upload whose pipeline would run code
    marker: str = field(default_factory=lambda: f"zz{uuid.uuid4().hex[:8]}")
    facts: dict[str, Any] = field(default_factory=dict)  # found by the live cases, for checks

    def close(self) -> None:
        self.listener.close()
        shutil.rmtree(self.outside, ignore_errors=True)
        shutil.rmtree(self.md5_repo.parent, ignore_errors=True)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=drill", "-c", "user.email=drill@localhost", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def prepare(world: World, pwned: Path, dataset: dict[str, Any]) -> Setup:
    from lineage.dvc_repo import commit_data, init_data_repo
    from lineage.synthetic import generate_loans

    outside = Path(tempfile.mkdtemp(prefix="govern-hostile-outside-"))
    secret = outside / "secret.csv"
    token = uuid.uuid4().hex
    secret.write_text(f"name,token\nroot,{token}\n")
    base = world.var_dir / "hostile-md5"
    repo = init_data_repo(base / "repo", base / "remote")
    commit_data(repo, "data/loans.csv", generate_loans(60, seed=5).to_csv().encode(), "loans")
    listener = Listener()
    remote_repo = _listener_remote(repo, base / "remote-repo", listener.port)
    # DVC reads <cache>/files/md5/<md5[:2]>/<md5[2:]>; enough '../' climb from there to '/'.
    bogus = "../" * 40 + str(secret).lstrip("/")
    (repo / "data" / "secret.csv.dvc").write_text(
        f"outs:\n- md5: {bogus}\n  size: 40\n  hash: md5\n  path: secret.csv\n"
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "an md5 that is a path")
    outside_repo = outside / "repo"
    shutil.copytree(repo, outside_repo, symlinks=True)
    return Setup(
        outside=outside,
        md5_repo=repo,
        outside_repo=outside_repo,
        remote_repo=remote_repo,
        secret=secret,
        secret_token=token,
        listener=listener,
        upload=_code_running_upload(dataset, pwned),
    )


def _listener_remote(source: Path, repo: Path, port: int) -> Path:
    """A copy of ``source`` whose committed DVC remote is ``http://127.0.0.1:port`` and whose
    cache is empty: reading its data would make DVC fetch from there."""
    shutil.copytree(source, repo, symlinks=True)
    (repo / ".dvc" / "config").write_text(
        "[core]\n    analytics = false\n    remote = storage\n"
        f"['remote \"storage\"']\n    url = http://127.0.0.1:{port}/store\n"
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "a remote on a local listener")
    shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)
    return repo


def _code_running_upload(dataset: dict[str, Any], pwned: Path) -> dict[str, Any]:
    """The reviewed attack: FunctionTransformer steps that turn any input into ``eval(expr)``,
    in front of a real model, uploaded in skops format. Scored, it would write ``pwned``."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from lineage.capture import TrainingCapture
    from lineage.synthetic import generate_loans

    frame = generate_loans(200, seed=3)
    model = LogisticRegression().fit(frame[["income"]], frame["repaid"])
    expression = f"open({str(pwned)!r}, 'w').write('pwned')"
    pipeline = Pipeline(
        [
            (
                "fill",
                FunctionTransformer(
                    np.full_like, kw_args={"fill_value": expression, "dtype": object}
                ),
            ),
            ("flat", FunctionTransformer(np.ravel)),
            ("pick", FunctionTransformer(max)),
            ("run", FunctionTransformer(eval)),
            ("model", model),
        ]
    )
    capture = TrainingCapture(dataset=dataset, seeds={"estimator": 5})
    return capture.payload(
        pipeline,
        target={"column": "repaid", "positive_class": 1},
        features=[{"name": "income", "type": "numeric"}],
    )


def request_cases(setup: Setup, spec: dict[str, Any], features: dict[str, Any]) -> list[Case]:
    """The attacks that are one request each."""
    return (
        _upload_cases(setup)
        + _before_auth_cases()
        + _surrogate_cases(spec, features)
        + _cost_cases(spec)
        + _dataset_cases(setup, spec)
    )


def attack_case(name: str, method: str, path: str, role: str | None, **kw: Any) -> Case:
    return Case(CATEGORY, name, method, path, role, **kw)


def _upload_cases(setup: Setup) -> list[Case]:
    return [
        attack_case(
            "skops upload of a pipeline that runs eval (would write the PWNED file)",
            "POST",
            UPLOAD,
            "data-scientist",
            json_body=setup.upload,
            expect=frozenset({422}),
            mentions=("builtins.eval", "numpy.full_like"),
        ),
        attack_case(
            "the refused upload registered nothing",
            "GET",
            "/api/v1/models/hostile-skops",
            "data-scientist",
            expect=frozenset({404}),
        ),
    ]


def _before_auth_cases() -> list[Case]:
    bomb = alias_bomb().encode()
    little = b'{"artifact": {"content_base64": "' + b"A" * 1000
    return [
        attack_case(
            "9-level YAML alias bomb, no key (answered from the headers)",
            "POST",
            "/api/v1/runs",
            None,
            content=bomb,
            content_type="application/yaml",
            raw=True,
            expect=frozenset({401}),
        ),
        attack_case(
            "9-level YAML alias bomb, data-scientist key",
            "POST",
            "/api/v1/runs",
            "data-scientist",
            content=bomb,
            content_type="application/yaml",
            expect=frozenset({422}),
            mentions=("anchors and aliases",),
        ),
        attack_case(
            "upload announcing 200 MB, no key (1 kB sent)",
            "POST",
            UPLOAD,
            None,
            content=little,
            raw=True,
            declared_length=200 * MB,
            expect=frozenset({401}),
        ),
        attack_case(
            "upload announcing 200 MB, predictor key (1 kB sent)",
            "POST",
            UPLOAD,
            "predictor",
            content=little,
            raw=True,
            declared_length=200 * MB,
            expect=frozenset({403}),
        ),
        attack_case(
            "upload announcing 300 MB (over GOV_MAX_ARTIFACT_BYTES), data-scientist key",
            "POST",
            UPLOAD,
            "data-scientist",
            content=little,
            raw=True,
            declared_length=300 * MB,
            expect=frozenset({413}),
        ),
        attack_case(
            "predict announcing 2 MB, no key (1 kB sent)",
            "POST",
            PREDICT,
            None,
            content=little,
            raw=True,
            declared_length=2 * MB,
            expect=frozenset({401}),
        ),
    ]


def _surrogate_cases(spec: dict[str, Any], features: dict[str, Any]) -> list[Case]:
    lone = "\ud800"
    return [
        attack_case(
            "lone surrogate in subject_id",
            "POST",
            PREDICT,
            "predictor",
            json_body={"subject_id": lone, "features": features},
            expect=frozenset({422}),
            mentions=("subject_id",),
        ),
        attack_case(
            "lone surrogate in a feature value",
            "POST",
            PREDICT,
            "predictor",
            json_body={"subject_id": "hostile-s", "features": {**features, "purpose": "\udfff"}},
            expect=frozenset({422}),
            mentions=("features.purpose",),
        ),
        attack_case(
            "lone surrogate as a context key",
            "POST",
            PREDICT,
            "predictor",
            json_body={"subject_id": "hostile-s", "features": features, "context": {"\udc00": 1}},
            expect=frozenset({422}),
            mentions=("context",),
        ),
        attack_case(
            "lone surrogate in an outcome",
            "POST",
            "/api/v1/outcomes",
            "outcomes",
            json_body={"outcomes": [{"decision_id": lone, "outcome": "1"}]},
            expect=frozenset({422}),
        ),
        attack_case(
            "lone surrogate in a spec's description",
            "POST",
            "/api/v1/runs",
            "data-scientist",
            json_body={**spec, "description": lone},
            expect=frozenset({422}),
            mentions=("description",),
        ),
    ]


def _estimator(spec: dict[str, Any], estimator: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "estimator": estimator}


def _cost_cases(spec: dict[str, Any]) -> list[Case]:
    forest = "sklearn.ensemble.RandomForestClassifier"
    boosting = "sklearn.ensemble.HistGradientBoostingClassifier"
    return [
        attack_case(
            "spec with n_estimators 100,000,000 and n_jobs -1",
            "POST",
            "/api/v1/runs",
            "data-scientist",
            json_body=_estimator(
                spec, {"class": forest, "params": {"n_estimators": 100_000_000, "n_jobs": -1}}
            ),
            expect=frozenset({422}),
            mentions=("n_estimators", "n_jobs"),
        ),
        attack_case(
            "spec with max_iter 1,000,000,000",
            "POST",
            "/api/v1/runs",
            "data-scientist",
            json_body=_estimator(spec, {"class": boosting, "params": {"max_iter": 1_000_000_000}}),
            expect=frozenset({422}),
            mentions=("max_iter",),
        ),
    ]


def _dataset_cases(setup: Setup, spec: dict[str, Any]) -> list[Case]:
    port = setup.listener.port
    password = f"pw-{setup.marker}"
    content = setup.secret.read_bytes()
    hidden = (
        setup.secret_token,
        hashlib.md5(content).hexdigest(),  # noqa: S324 - what DVC would have computed
        hashlib.sha256(content).hexdigest(),
        str(setup.secret),
    )

    def register(name: str, repo: str, path: str = "data/loans.csv", **kw: Any) -> Case:
        body = {"name": "hostile", "repo": repo, "path": path, "rev": "HEAD"}
        return attack_case(name, "POST", "/api/v1/datasets", "data-scientist", json_body=body, **kw)

    refused = frozenset({422})
    md5_spec = {
        **spec,
        "dataset": {
            "name": "hostile",
            "repo": str(setup.md5_repo),
            "path": "data/secret.csv",
            "rev": "HEAD",
        },
    }
    remote_spec = {**spec, "dataset": {**md5_spec["dataset"], "repo": f"http://127.0.0.1:{port}/x"}}
    return [
        register(
            f"dataset repo http://127.0.0.1:{port}/x (a listener)",
            f"http://127.0.0.1:{port}/x",
            expect=refused,
        ),
        register(
            f"dataset repo ssh://127.0.0.1:{port}/x", f"ssh://127.0.0.1:{port}/x", expect=refused
        ),
        register(
            "dataset repo URL with credentials",
            f"http://alice:{password}@127.0.0.1:{port}/x",
            expect=refused,
            mentions=("credentials",),
            never_mentions=(password,),
        ),
        register(
            "dataset repo: a real DVC repo outside the data roots",
            str(setup.outside_repo),
            expect=refused,
            never_mentions=(str(setup.outside_repo),),
        ),
        register("dataset repo: nothing there", f"{setup.outside}/no-such-repo", expect=refused),
        register(
            "dataset repo whose committed DVC remote is the listener (cache empty)",
            str(setup.remote_repo),
            expect=refused,
            mentions=("DVC remote",),
        ),
        register(
            "dataset .dvc with md5 ../../…/secret.csv",
            str(setup.md5_repo),
            "data/secret.csv",
            expect=refused,
            mentions=("not an md5 digest",),
            never_mentions=hidden,
        ),
        attack_case(
            "training spec naming the .dvc with md5 ../../…/secret.csv",
            "POST",
            "/api/v1/runs",
            "data-scientist",
            json_body=md5_spec,
            expect=refused,
            mentions=("not an md5 digest",),
            never_mentions=hidden,
        ),
        attack_case(
            "training spec naming the listener as its repo",
            "POST",
            "/api/v1/runs",
            "data-scientist",
            json_body=remote_spec,
            expect=refused,
        ),
    ]


def post_checks(setup: Setup, url: str, cases: list[Case]) -> tuple[list[str], bool]:
    """What the statuses alone do not prove: nothing connected, ran, registered or leaked."""
    runs = sa.table("training_run", sa.column("spec"))
    costly = scalar(
        url,
        sa.select(sa.func.count())
        .select_from(runs)
        .where(sa.cast(runs.c.spec, sa.Text).contains("100000000")),
    )
    datasets = sa.table("dataset_version", sa.column("name"))
    registered = scalar(
        url,
        sa.select(sa.func.count()).select_from(datasets).where(datasets.c.name == "hostile"),
    )
    trail = sa.table("access_log", sa.column("action"), sa.column("target"))
    rebuild = setup.facts.get("rebuild", {})
    rebuild_reads = scalar(
        url,
        sa.select(sa.func.count())
        .select_from(trail)
        .where(
            (trail.c.action == "decision.rebuild.read")
            & (trail.c.target == rebuild.get("decision_id"))
        ),
    )
    answers = {c.name: c.answer for c in cases if c.category == CATEGORY}
    outside = answers.get("dataset repo: a real DVC repo outside the data roots")
    nothing = answers.get("dataset repo: nothing there")
    same = outside is not None and outside == nothing
    metrics = setup.facts.get("metrics", {})
    connections = len(setup.listener.connections)
    findings = [
        f"Issue 16: the dataset URLs, the spec URL and the committed DVC remote naming a local "
        f"listener (port {setup.listener.port}) made the server connect {connections} times; "
        f"the repo outside the roots and the path with nothing there got "
        f"{'the same' if same else 'DIFFERENT'} answer; datasets registered by these cases: "
        f"{registered}; training runs stored with n_estimators 100,000,000: {costly}.",
        f"Issue 16: appeals read of rebuild {rebuild.get('id')} with its own decision_id is in "
        f"the access trail ({rebuild_reads} entry); /metrics was {metrics.get('bytes_before')} "
        f"bytes before the 60 made-up names and keys and {metrics.get('bytes_after')} after, "
        f"new label values: {sorted({v for _, v in metrics.get('new_labels', [])}) or 'none'}.",
    ]
    ok = connections == 0 and same and registered == 0 and costly == 0 and rebuild_reads >= 1
    return findings, ok
