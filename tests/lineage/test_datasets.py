from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from governance.auth.models import Role
from lineage import datasets
from lineage.dvc_repo import _git, clear_cache
from tests.support.factories import DataRepo, loans_csv, make_data_repo


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
