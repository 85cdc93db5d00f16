"""The fixtures' model cache (``tests.support.fit_cache``) gives what a real training gives.

Fixtures that need a trained model reuse one real fit per distinct spec, data and environment.
These tests fail if a cached model ever differs from the model the same spec trains for real, or
if the cache answers for a spec, data or environment it was not fitted on.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from core.config import Settings
from core.db import session_factory, transaction
from lineage import environment, registry
from lineage.artifacts import ArtifactStore
from tests.support.factories import (
    DataRepo,
    cached_spec,
    loan_book_yaml,
    loans_csv,
    make_data_repo,
    spec_for,
    train_spec,
)
from tests.support.fit_cache import FIT_CACHE, fit_key

# What differs between two registrations of one fit: the run, when it ran, and how long the fit
# took (the cached fit's own time is recorded, as the runner records any fit's).
_PER_RUN = ("run_id", "timing")


def _version(engine: sa.Engine, name: str, version: int) -> dict[str, Any]:
    with transaction(session_factory(engine)) as session:
        _model, found = registry.get_version(session=session, name=name, version=version)
        return found.model_dump()


def _spec(which: str, data_repo: DataRepo, loan_book_repo: DataRepo) -> dict[str, Any] | str:
    """The specs behind the ``served`` (credit v1) and ``served_book`` fixtures."""
    return spec_for(data_repo, seed=7) if which == "credit" else loan_book_yaml(loan_book_repo)


@pytest.mark.parametrize("which", ["credit", "loanbook"])
def test_a_cached_fixture_model_is_the_model_a_real_training_of_its_spec_makes(
    which: str,
    settings: Settings,
    engine: sa.Engine,
    data_repo: DataRepo,
    loan_book_repo: DataRepo,
) -> None:
    spec = _spec(which, data_repo, loan_book_repo)
    cached_spec(settings, spec)  # fitted now, or earlier in this run
    reused = FIT_CACHE.reused
    from_cache = cached_spec(settings, spec)
    assert FIT_CACHE.reused == reused + 1, "the second registration must come from the cache"

    fitted, reused = FIT_CACHE.fitted, FIT_CACHE.reused
    trained = train_spec(settings, spec)
    assert (FIT_CACHE.fitted, FIT_CACHE.reused) == (fitted, reused), "trained for real"

    name = "credit" if which == "credit" else "loanbook"
    cached, real = _version(engine, name, from_cache), _version(engine, name, trained)
    assert cached["artifact_sha256"] == real["artifact_sha256"]
    assert cached["fingerprint"] == real["fingerprint"]
    # The cached fit's bytes were stored in this test's artifact store (get checks their hash).
    assert ArtifactStore(settings.artifacts).get(cached["artifact_sha256"])
    for field in ("input_schema", "metrics", "estimator_class", "gate_passed", "source"):
        assert cached[field] == real[field], field
    assert cached["run_id"] != real["run_id"]
    assert cached["lineage"]["run_id"] == cached["run_id"]
    cached_lineage = {k: v for k, v in cached["lineage"].items() if k not in _PER_RUN}
    real_lineage = {k: v for k, v in real["lineage"].items() if k not in _PER_RUN}
    assert cached_lineage == real_lineage


def _resolved(data: DataRepo, **overrides: Any) -> dict[str, Any]:
    spec = spec_for(data, **overrides)
    spec["dataset"] = {"id": None, **spec["dataset"]}
    return spec


def test_the_key_is_the_spec_the_data_bytes_and_the_environment_not_where_the_data_lives(
    tmp_path: Any, data_repo: DataRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = loans_csv(seed=2)
    other_repo = make_data_repo(tmp_path / "other", versions=1)
    key = fit_key({}, _resolved(data_repo), content, "csv")

    # The same spec and bytes from another repository and commit: the same fit.
    assert fit_key({}, _resolved(other_repo), content, "csv") == key
    # Anything the fit reads or runs with: another fit.
    assert fit_key({}, _resolved(data_repo, seed=8), content, "csv") != key
    assert fit_key({}, _resolved(data_repo), loans_csv(seed=3), "csv") != key
    assert fit_key({}, _resolved(data_repo), content, "parquet") != key
    assert fit_key({"OMP_NUM_THREADS": "1"}, _resolved(data_repo), content, "csv") != key
    renamed = _resolved(data_repo)
    renamed["dataset"]["path"] = "data/other.csv"
    assert fit_key({}, renamed, content, "csv") != key

    packages = dict(environment.installed_packages())
    packages["scikit-learn"] = "0.0.1"
    monkeypatch.setattr(environment, "installed_packages", lambda: packages)
    assert fit_key({}, _resolved(data_repo), content, "csv") != key
