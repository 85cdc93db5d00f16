"""Rebuild time against training time for the demo model, measured side by side.

In one process (as the server would run them): set up the demo (DVC repo, ``credit`` v1 trained
from its spec), then

1. train the same spec again through the runner, ``--repeats`` times: the baseline, whose
   durations are measured exactly as the lineage's ``timing.duration_s`` is;
2. rebuild ``credit`` v1 ``--repeats`` times (in process; the first one also starts the zygote
   interpreter and imports DVC, reported apart as the cold rebuild).

Every rebuild must say ``identical``. Reported: p50 of each, and the ratio of the warm rebuild
to the training run.

    uv run python -m bench.rebuild [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from core import migrate
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from governance.demo import run_demo
from lineage import registry, service
from lineage.fresh import ZYGOTE
from lineage.runner import execute_run
from rebuild import service as rebuild_service


def _train_again(settings: Settings, factory: Any) -> float:
    with transaction(factory) as session:
        _model, version = registry.get_version(session=session, name="credit", version=1)
        run = service.create_run(session=session, spec_data=version.lineage["spec"], actor="bench")
        run_id = run.id
    assert run_id is not None
    execute_run(settings, run_id)
    with transaction(factory) as session:
        public = service.run_public(session, service.get_run(session=session, run_id=run_id))
        assert public.model_version is not None, public.error
        _m, version = registry.get_version(
            session=session, name="credit", version=public.model_version
        )
        return float(version.lineage["timing"]["duration_s"])


def _rebuild(settings: Settings, factory: Any) -> tuple[float, dict[str, Any]]:
    with transaction(factory) as session:
        model, version = registry.get_version(session=session, name="credit", version=1)
        job, _created = rebuild_service.create_rebuild(
            session=session, model=model, version=version, actor="bench", executor="in-process"
        )
        rebuild_id = job.id
    assert rebuild_id is not None
    started = time.perf_counter()
    rebuild_service.execute_rebuild(settings, rebuild_id)
    elapsed = time.perf_counter() - started
    with transaction(factory) as session:
        report = dict(rebuild_service.get_rebuild(session, rebuild_id).report or {})
    if report.get("verdict") != rebuild_service.IDENTICAL:
        raise SystemExit(f"rebuild was not identical: {report.get('verdict')} {report}")
    return elapsed, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(var_dir=Path(tmp), environment="test")
        migrate.upgrade(settings)
        run_demo(settings, decisions=300)
        engine = make_engine(settings)
        factory = session_factory(engine)
        with transaction(factory) as session:
            _m, version = registry.get_version(session=session, name="credit", version=1)
            recorded = float(version.lineage["timing"]["duration_s"])
        training = [_train_again(settings, factory) for _ in range(args.repeats)]
        cold, cold_report = _rebuild(settings, factory)
        warm = [_rebuild(settings, factory) for _ in range(args.repeats)]
        ZYGOTE.stop()
        engine.dispose()
    warm_s = [w[0] for w in warm]
    result = {
        "demo_model_recorded_training_s": recorded,
        "training_again_p50_s": statistics.median(training),
        "rebuild_cold_s": cold,
        "rebuild_warm_p50_s": statistics.median(warm_s),
        "rebuild_warm_max_s": max(warm_s),
        "ratio_warm_rebuild_to_training": statistics.median(warm_s) / statistics.median(training),
        "ratio_cold_rebuild_to_training": cold / statistics.median(training),
        "verdicts": [cold_report["verdict"], *[w[1]["verdict"] for w in warm]],
        "repeats": args.repeats,
    }
    print(json.dumps(result, indent=2, default=lambda v: round(v, 3)))


if __name__ == "__main__":
    main()
