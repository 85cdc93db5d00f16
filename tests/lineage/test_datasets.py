from __future__ import annotations

import hashlib
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.config import Settings
from lineage import datasets
from lineage.dvc_repo import _git, clear_cache
from tests.support.factories import DataRepo, client_with, loans_csv, make_data_repo, spec_for


def _register(client: TestClient, headers: dict, **body: str):
    return client.post("/api/v1/datasets", headers=headers, json=body)


def test_two_revisions_differ_and_reregistering_returns_the_same(
    client: TestClient, auth, data_repo: DataRepo
) -> None:
    ds = auth(Role.data_scientist)
    old, new = data_repo.commits[0], data_repo.commits[1]
    first = _register(
        client, ds, name="loans", repo=str(data_repo.repo), path=data_repo.path, rev=old
    )
    second = _register(
        client, ds, name="loans", repo=str(data_repo.repo), path=data_repo.path, rev=new
    )
    assert first.status_code == second.status_code == 201
    a, b = first.json(), second.json()
    assert (a["version"], b["version"]) == (1, 2)
    assert a["commit"] == old and b["commit"] == new
    assert a["sha256"] != b["sha256"] and a["md5"] != b["md5"]
    assert a["sha256"] == hashlib.sha256(loans_csv(n=1500, seed=1)).hexdigest()
    assert a["row_count"] == 1500
    assert {"name": "income", "dtype": "float64"} in a["columns"]
    assert {"name": "purpose", "dtype": "object"} in a["columns"]

    again = _register(
        client, ds, name="loans", repo=str(data_repo.repo), path=data_repo.path, rev=old
    )
    assert again.status_code == 200
    assert again.json()["id"] == a["id"]

    listed = client.get("/api/v1/datasets", headers=auth(Role.compliance)).json()
    assert [d["id"] for d in listed["data"]] == [a["id"], b["id"]]
    one = client.get(f"/api/v1/datasets/{b['id']}", headers=ds).json()
    assert one == b


def test_pagination_walks_every_version_once(client: TestClient, auth, data_repo: DataRepo) -> None:
    ds = auth(Role.data_scientist)
    for name in ["a", "b", "c"]:
        for rev in data_repo.commits:
            assert (
                _register(
                    client, ds, name=name, repo=str(data_repo.repo), path=data_repo.path, rev=rev
                ).status_code
                == 201
            )
    seen, cursor = [], None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor is not None else {})}
        page = client.get("/api/v1/datasets", headers=ds, params=params).json()
        seen += [d["id"] for d in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and len(set(seen)) == 6


def test_old_revision_comes_back_from_the_remote_after_the_cache_is_cleared(tmp_path: Path) -> None:
    data = make_data_repo(tmp_path, versions=2, n=200)
    clear_cache(data.repo)
    snap = datasets.read_snapshot(str(data.repo), data.path, data.commits[0])
    assert snap.content == loans_csv(n=200, seed=1)
    assert snap.commit == data.commits[0]


def test_a_parquet_version_reads_back_as_the_same_table(tmp_path: Path) -> None:
    """pyarrow must import beside the pinned NumPy (pyarrow 26 needs NumPy 2 and failed here)."""
    import io

    from lineage.synthetic import generate_loans

    frame = generate_loans(150, seed=4)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = make_data_repo(tmp_path, versions=0)
    commit = data.add_version(buffer.getvalue(), "parquet", path="data/loans.parquet")
    snap = datasets.read_snapshot(str(data.repo), "data/loans.parquet", commit)
    assert snap.format == "parquet" and snap.row_count == 150
    assert snap.frame().equals(frame)


@pytest.fixture
def odd_repo(tmp_path: Path) -> DataRepo:
    data = make_data_repo(tmp_path, versions=1, n=100)
    (data.repo / "plain.csv").write_text("a,b\n1,2\n")
    _git(data.repo, "add", "plain.csv")
    _git(data.repo, "commit", "-q", "-m", "a plain git file")
    data.commits.append(_git(data.repo, "rev-parse", "HEAD"))
    data.add_version(b"", "empty file", path="data/empty.csv")
    data.add_version(b"\x00\x01not parquet\xff", "garbage", path="data/garbage.parquet")
    data.add_version(b"x,y\n1,2\n", "never pushed", path="data/unpushed.csv", push=False)
    clear_cache(data.repo)
    return data


@pytest.mark.parametrize(
    ("repo", "path", "rev", "status", "field", "text"),
    [
        ("{tmp}", "data/loans.csv", "HEAD", 422, "repo", "not a git repository"),
        ("relative/repo", "data/loans.csv", "HEAD", 422, "repo", "absolute path"),
        ("ext::sh -c touch% /tmp/pwned", "data/loans.csv", "HEAD", 422, "repo", "unsupported"),
        ("{repo}", "data/loans.csv", "no-such-branch", 422, "rev", "unknown revision"),
        ("{repo}", "data/loans.csv", "--upload-pack=evil", 422, "rev", "not a valid git revision"),
        ("{repo}", "plain.csv", "HEAD", 422, "path", "not tracked by DVC"),
        ("{repo}", "data/missing.csv", "HEAD", 422, "path", "not tracked by DVC"),
        ("{repo}", "../../etc/passwd.csv", "HEAD", 422, "path", "without '..'"),
        ("{repo}", "data/loans.txt", "HEAD", 422, "path", "unsupported file type"),
        ("{repo}", "data/empty.csv", "HEAD", 422, "path", "is empty"),
        ("{repo}", "data/garbage.parquet", "HEAD", 422, "path", "not a readable parquet"),
        (
            "{repo}",
            "data/unpushed.csv",
            "HEAD",
            409,
            "path",
            "neither the local DVC cache nor the remote",
        ),
    ],
)
def test_bad_dataset_references_are_named(
    client: TestClient,
    auth,
    odd_repo: DataRepo,
    tmp_path: Path,
    repo: str,
    path: str,
    rev: str,
    status: int,
    field: str,
    text: str,
) -> None:
    plain = tmp_path / "plain-dir"
    plain.mkdir(exist_ok=True)
    repo = repo.format(tmp=plain, repo=odd_repo.repo)
    response = _register(client, auth(Role.data_scientist), name="x", repo=repo, path=path, rev=rev)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert text in error["message"]
    assert error["details"][0]["field"] == field


def test_tampered_remote_data_is_refused(tmp_path: Path) -> None:
    data = make_data_repo(tmp_path, versions=1, n=100)
    clear_cache(data.repo)
    for stored in data.remote.rglob("*"):
        if stored.is_file():
            stored.chmod(0o644)
            stored.write_bytes(stored.read_bytes().replace(b"car", b"bus"))
    with pytest.raises(datasets.DatasetError, match="do not match the md5"):
        datasets.read_snapshot(str(data.repo), data.path, "HEAD")


@pytest.mark.parametrize("role", [Role.compliance, Role.appeals, Role.predictor])
def test_only_data_scientists_register(
    client: TestClient, auth, data_repo: DataRepo, role: Role
) -> None:
    response = _register(
        client, auth(role), name="x", repo=str(data_repo.repo), path=data_repo.path, rev="HEAD"
    )
    assert response.status_code == 403


def test_reading_datasets_is_refused_to_appeals_and_predictor(client: TestClient, auth) -> None:
    for role in (Role.appeals, Role.predictor):
        assert client.get("/api/v1/datasets", headers=auth(role)).status_code == 403
    assert client.get("/api/v1/datasets/999", headers=auth(Role.compliance)).status_code == 404


# What a dataset reference may make the server touch (issue 16) ---------------------------------


@dataclass
class Listener:
    """A local TCP port that records every connection and closes it at once."""

    port: int
    connections: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    found = Listener(port=server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            found.connections.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield found
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def outside_repo() -> Iterator[DataRepo]:
    """A real data repo outside every allowed root (pytest's base folder and var_dir)."""
    base = Path(tempfile.mkdtemp(prefix="govern-outside-"))
    try:
        yield make_data_repo(base, versions=1, n=50)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _write_config(repo: Path, remote_url: str, extra: str = "") -> None:
    (repo / ".dvc" / "config").write_text(
        "[core]\n    analytics = false\n    remote = storage\n"
        f"['remote \"storage\"']\n    url = {remote_url}\n{extra}"
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "DVC config")


def _run_spec(data: DataRepo, path: str, repo: str | None = None) -> dict:
    spec = spec_for(data, rev="HEAD")
    spec["dataset"].update(path=path, **({"repo": repo} if repo else {}))
    return spec


@pytest.mark.parametrize("route", ["datasets", "runs"])
def test_an_md5_that_is_a_path_reads_no_server_file(
    client: TestClient, auth, tmp_path: Path, route: str
) -> None:
    data = make_data_repo(tmp_path / "data", versions=1, n=50)
    secret = tmp_path / "secret.csv"
    secret.write_bytes(f"name,token\nroot,{uuid.uuid4().hex}\n".encode())
    # DVC reads <cache>/files/md5/<md5[:2]>/<md5[2:]>; enough '../' climb from there to '/'.
    bogus = "../" * 40 + str(secret).lstrip("/")
    (data.repo / "data" / "secret.csv.dvc").write_text(
        f"outs:\n- md5: {bogus}\n  size: 40\n  hash: md5\n  path: secret.csv\n"
    )
    _git(data.repo, "add", "-A")
    _git(data.repo, "commit", "-q", "-m", "an md5 that is a path")

    ds = auth(Role.data_scientist)
    if route == "datasets":
        response = _register(
            client, ds, name="x", repo=str(data.repo), path="data/secret.csv", rev="HEAD"
        )
        field_name = "path"
    else:
        response = client.post("/api/v1/runs", headers=ds, json=_run_spec(data, "data/secret.csv"))
        field_name = "dataset.path"
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"][0]["field"] == field_name
    assert "not an md5 digest" in error["message"]
    content = secret.read_bytes()
    for leaked in (
        content.decode().split(",")[-1].strip(),
        hashlib.md5(content).hexdigest(),
        hashlib.sha256(content).hexdigest(),
        str(secret),
    ):
        assert leaked not in response.text

    # A registered version read again (a rebuild) has no policy, and is checked all the same.
    with pytest.raises(datasets.DatasetError, match="not an md5") as caught:
        datasets.read_snapshot(str(data.repo), "data/secret.csv", "HEAD")
    assert not isinstance(caught.value, datasets.DataMismatch)
    assert hashlib.md5(content).hexdigest() not in caught.value.message


def test_a_repo_outside_the_roots_looks_exactly_like_no_repo(
    client: TestClient, auth, tmp_path: Path, outside_repo: DataRepo, data_repo: DataRepo
) -> None:
    link = tmp_path / "link-to-outside"
    link.symlink_to(outside_repo.repo)
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    ds = auth(Role.data_scientist)
    bodies = set()
    for repo in [
        str(outside_repo.repo),  # a real DVC repo, outside the roots
        str(tmp_path / "no-such-dir"),  # inside the roots, nothing there
        "/no/such/dir",  # outside the roots, nothing there
        str(link),  # a symlink inside the roots to the outside repo
        f"{tmp_path}/{'../' * len(tmp_path.parts)}{str(outside_repo.repo).lstrip('/')}",
        f"file://{outside_repo.repo}",
        str(not_a_dir),
    ]:
        response = _register(
            client, ds, name="x", repo=repo, path=outside_repo.path, rev=outside_repo.commits[0]
        )
        assert response.status_code == 422, (repo, response.text)
        assert response.json()["error"]["details"][0]["field"] == "repo"
        bodies.add(response.content)
    assert len(bodies) == 1, bodies
    assert b"allowed data roots" in bodies.pop()

    # The same repo inside the roots registers, under its resolved path.
    inside = _register(
        client, ds, name="x", repo=str(data_repo.repo), path=data_repo.path, rev="HEAD"
    )
    assert inside.status_code == 201, inside.text
    assert inside.json()["repo"] == str(data_repo.repo.resolve())
    assert client.get("/api/v1/datasets", headers=ds).json()["count"] == 1


@pytest.mark.parametrize("scheme", ["http", "https", "git", "ssh"])
def test_a_remote_url_is_refused_unless_its_origin_is_allowed(
    client: TestClient, auth, settings: Settings, listener: Listener, scheme: str
) -> None:
    url = f"{scheme}://127.0.0.1:{listener.port}/x"
    ds = auth(Role.data_scientist)
    response = _register(client, ds, name="x", repo=url, path="data/loans.csv", rev="HEAD")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "repo"
    assert "origins" in response.json()["error"]["message"]

    allowed = f"{scheme}://127.0.0.1:{listener.port}"
    with client_with(settings, data_remote_origins=[allowed]) as other:
        for near_miss in [
            f"{scheme}://localhost:{listener.port}/x",  # same listener, another host name
            f"{scheme}://127.0.0.1:{listener.port + 1}/x",
            f"{scheme}://127.0.0.1:{listener.port}0/x",
            f"{scheme}://127.0.0.1.example.org:{listener.port}/x",
            f"{'https' if scheme == 'http' else 'http'}://127.0.0.1:{listener.port}/x",
        ]:
            refused = _register(other, ds, name="x", repo=near_miss, path="a.csv", rev="HEAD")
            assert refused.status_code == 422, (near_miss, refused.text)
        assert listener.connections == []
        if scheme in {"http", "git"}:
            # The origin check passes; then there is no git server behind the port.
            passed = _register(other, ds, name="x", repo=url, path="data/loans.csv", rev="HEAD")
            assert passed.status_code == 422, passed.text
            assert "cannot clone" in passed.json()["error"]["message"]
            assert listener.connections


@pytest.mark.parametrize(
    "repo",
    [
        "http://alice:{secret}@127.0.0.1:{port}/x",
        "https://{secret}@127.0.0.1:{port}/x",
        "https://:{secret}@127.0.0.1:{port}/x",
        "ssh://git:{secret}@127.0.0.1:{port}/x",
        "git:{secret}@127.0.0.1:x",
    ],
)
@pytest.mark.parametrize("route", ["datasets", "runs"])
def test_credentials_in_a_repo_url_are_refused_and_never_shown(
    auth, settings: Settings, listener: Listener, data_repo: DataRepo, repo: str, route: str
) -> None:
    secret = f"tok{uuid.uuid4().hex}"
    repo = repo.format(secret=secret, port=listener.port)
    origins = [f"{s}://127.0.0.1:{listener.port}" for s in ("http", "https", "ssh")]
    ds = auth(Role.data_scientist)
    with client_with(settings, data_remote_origins=[*origins, "ssh://127.0.0.1"]) as client:
        if route == "datasets":
            response = _register(client, ds, name="x", repo=repo, path="data/loans.csv")
        else:
            spec = _run_spec(data_repo, "data/loans.csv", repo=repo)
            response = client.post("/api/v1/runs", headers=ds, json=spec)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["field"].endswith("repo")
        assert "credentials" in response.json()["error"]["message"]
        assert secret not in response.text
        assert client.get("/api/v1/datasets", headers=ds).json()["count"] == 0
    assert listener.connections == []


def test_a_dvc_remote_at_an_internal_address_is_refused_before_any_fetch(
    client: TestClient, auth, settings: Settings, tmp_path: Path, listener: Listener
) -> None:
    data = make_data_repo(tmp_path, versions=0)
    _write_config(data.repo, f"http://127.0.0.1:{listener.port}/store")
    data.add_version(loans_csv(n=50), "never pushed", push=False)
    clear_cache(data.repo)  # so DVC would have to fetch it from the remote
    ds = auth(Role.data_scientist)
    response = _register(client, ds, name="x", repo=str(data.repo), path=data.path, rev="HEAD")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"][0]["field"] == "repo"
    assert "DVC remote 'storage'" in error["message"]
    assert listener.connections == []

    # Allowed, the same remote is asked (and has nothing).
    with client_with(settings, data_remote_origins=[f"http://127.0.0.1:{listener.port}"]) as other:
        fetched = _register(other, ds, name="x", repo=str(data.repo), path=data.path, rev="HEAD")
    assert fetched.status_code == 409, fetched.text
    assert fetched.json()["error"]["code"] == "data_unavailable"
    assert listener.connections


@pytest.mark.parametrize(
    ("remote", "extra", "text"),
    [
        ("{outside}", "", "DVC remote 'storage'"),
        ("{remote}", "[cache]\n    dir = {outside}\n", "DVC cache"),
    ],
)
def test_dvc_remotes_and_caches_outside_the_roots_are_refused(
    client: TestClient, auth, tmp_path: Path, remote: str, extra: str, text: str
) -> None:
    data = make_data_repo(tmp_path / "data", versions=1, n=50)
    outside = Path(tempfile.mkdtemp(prefix="govern-outside-"))
    try:
        _write_config(
            data.repo,
            remote.format(outside=outside, remote=data.remote),
            extra.format(outside=outside),
        )
        response = _register(
            client, auth(Role.data_scientist), name="x", repo=str(data.repo), path=data.path
        )
    finally:
        shutil.rmtree(outside, ignore_errors=True)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "repo"
    assert text in response.json()["error"]["message"]
    assert str(outside) not in response.text


def test_a_dvc_import_from_an_internal_address_is_refused(
    client: TestClient, auth, tmp_path: Path, listener: Listener
) -> None:
    data = make_data_repo(tmp_path, versions=1, n=50)
    (data.repo / "data" / "imported.csv.dvc").write_text(
        "frozen: true\ndeps:\n- path: data/x.csv\n  repo:\n"
        f"    url: http://127.0.0.1:{listener.port}/source\n    rev_lock: {'a' * 40}\n"
        f"outs:\n- md5: {'0123456789abcdef' * 2}\n  size: 10\n  hash: md5\n  path: imported.csv\n"
    )
    _git(data.repo, "add", "-A")
    _git(data.repo, "commit", "-q", "-m", "an import")
    response = _register(
        client, auth(Role.data_scientist), name="x", repo=str(data.repo), path="data/imported.csv"
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"][0]["field"] == "path"
    assert "imported into this repository" in error["message"]
    assert listener.connections == []


def test_the_policy_reads_origins_exactly(settings: Settings) -> None:
    policy = datasets.DataPolicy.from_settings(
        settings.model_copy(
            update={
                "data_remote_origins": [
                    "https://git.example.com",
                    "ssh://git.example.com:2222",
                    "https://git.example.com/org",  # not an origin: ignored
                    "https://user@git.example.com",  # nor this
                ]
            }
        )
    )
    assert policy.origins == {("https", "git.example.com", 443), ("ssh", "git.example.com", 2222)}
    assert policy.roots == tuple(settings.allowed_data_roots)
    check = partial(datasets.check_repo, policy=policy)
    assert check("https://git.example.com/org/data.git") == "https://git.example.com/org/data.git"
    assert check("https://GIT.example.com:443/org/data.git")
    assert check("ssh://git@git.example.com:2222/org/data.git")
    for refused in [
        "https://git.example.com.evil.org/x",
        "https://git.example.com:8443/x",
        "http://git.example.com/x",
        "ssh://git@git.example.com/x",  # port 22, not 2222
        "git@git.example.com:org/data.git",  # scp-like is ssh on port 22
        "ftp://git.example.com/x",
        "https://git.example.com/x?token=1",
    ]:
        with pytest.raises(datasets.DatasetError) as caught:
            check(refused)
        assert caught.value.field_name == "repo"
    assert datasets.DataPolicy.from_settings(settings).origins == frozenset()
