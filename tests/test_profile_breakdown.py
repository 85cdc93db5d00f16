"""``bench/profile_breakdown.py`` sorts py-spy's samples into the stages of a predict: each sample
goes to the innermost frame that names a stage, so time in scikit-learn under the scoring path is
scoring, not FastAPI, however deep the stack."""

from __future__ import annotations

from pathlib import Path

from bench.profile_breakdown import breakdown, table

ROOT = "thread (1): MainThread;Runner.run (asyncio/runners.py:118)"
APP = ROOT + ";FastAPI.__call__ (fastapi/applications.py:1)"


def test_each_sample_goes_to_its_innermost_named_stage(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_text(
        "\n".join(
            [
                f"{APP};_score (serving/scoring.py:90);transform (sklearn/base.py:3) 7",
                f"{APP};append (core/audit/ledger.py:40) 2",
                f"{APP};execute (sqlalchemy/engine/base.py:1);append (core/audit/ledger.py:5) 1",
                f"{APP} 3",
                "thread (2): govern-decision-log;_run (serving/decision_log.py:82) 4",
                f"{ROOT};select (selectors.py:1) 2",
                "thread (3): other;main (somewhere.py:1) 1",
            ]
        )
        + "\n"
    )
    counts, total = breakdown(stacks)
    assert total == 20
    assert counts == {
        "scoring (compiled path)": 7,
        "log: chain hashing and content": 3,
        "FastAPI/Starlette routing and dependencies": 3,
        "log: database": 4,
        "event loop": 2,
        "other": 1,
    }
    rendered = table(stacks)
    assert "| scoring (compiled path) | 35.0% |" in rendered
    assert rendered.index("scoring") < rendered.index("log: database")
