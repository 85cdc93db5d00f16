from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from core.config import Settings
from governance.cli import app as cli
from tests.support.factories import DataRepo, spec_for


def test_train_command_prints_version_and_lineage(
    env_settings: Settings, data_repo: DataRepo, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_for(data_repo, seed=3)))
    result = CliRunner().invoke(cli, ["train", str(spec)])
    assert result.exit_code == 0, result.output
    assert "credit v1" in result.stdout
    assert data_repo.commits[-1] in result.stdout
    assert all(s in result.stdout for s in ("split=3", "estimator=3", "explain=0"))
    assert "roc_auc=" in result.stdout

    listed = CliRunner().invoke(cli, ["models", "list"])
    assert "credit" in listed.stdout
    staged = CliRunner().invoke(
        cli, ["models", "stage", "credit", "1", "production", "--reason", "approved"]
    )
    assert staged.exit_code == 0, staged.output
    assert "none -> production" in staged.stdout


def test_train_command_reports_spec_errors_by_field(
    env_settings: Settings, data_repo: DataRepo, tmp_path: Path
) -> None:
    bad = spec_for(data_repo)
    bad["estimator"]["class"] = "os.system"
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(bad))
    result = CliRunner().invoke(cli, ["train", str(spec)])
    assert result.exit_code == 2
    assert "estimator.class" in result.output


def test_datasets_commands(env_settings: Settings, data_repo: DataRepo) -> None:
    args = [
        "datasets",
        "register",
        "--name",
        "loans",
        "--repo",
        str(data_repo.repo),
        "--path",
        data_repo.path,
    ]
    first = CliRunner().invoke(cli, [*args, "--rev", data_repo.commits[0]])
    assert first.exit_code == 0, first.output
    assert "registered dataset id 1: loans v1" in first.stdout
    again = CliRunner().invoke(cli, [*args, "--rev", data_repo.commits[0]])
    assert "already registered" in again.stdout
    bad = CliRunner().invoke(cli, [*args, "--rev", "nope"])
    assert bad.exit_code == 2
    assert "unknown revision" in bad.output
    listed = CliRunner().invoke(cli, ["datasets", "list"])
    assert data_repo.commits[0][:12] in listed.stdout
