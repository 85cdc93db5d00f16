"""Training run (with full lineage capture) against a bare Pipeline.fit of the same spec.

Both run in this process, alternated, on the same data. The run includes everything govern does:
reading the data version through DVC and checking its hashes, split, fit, evaluation overall and
by group, gate, serialisation, fingerprint, environment capture, artifact write and registry rows.

    uv run python -m bench.training_overhead --rows 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from core import migrate
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from lineage import service
from lineage.dvc_repo import commit_data, init_data_repo
from lineage.input_schema import InputSchema, build_input_schema, frame_from_table
from lineage.pipeline import build_pipeline
from lineage.runner import execute_run
from lineage.spec import parse_spec
from lineage.synthetic import demo_spec, generate_loans
from lineage.training import binary_target, split_frame


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        repo = init_data_repo(base / "repo", base / "remote")
        frame = generate_loans(args.rows, seed=1)
        commit_data(repo, "data/loans.csv", frame.to_csv(index=False).encode(), "loans")
        settings = Settings(var_dir=base / "var", environment="test")
        migrate.upgrade(settings)
        raw = demo_spec(
            dataset={"name": "loans", "repo": str(repo), "path": "data/loans.csv", "rev": "main"}
        )
        spec = parse_spec(raw)
        engine = make_engine(settings)
        factory = session_factory(engine)

        def bare_fit() -> float:
            started = time.perf_counter()
            y, classes = binary_target(spec, frame)
            train_idx, _ = split_frame(spec, frame, y)
            document = build_input_schema(spec, frame.iloc[train_idx], classes)
            schema = InputSchema.from_document(document)
            x = frame_from_table(schema, frame.iloc[train_idx][spec.feature_names])
            build_pipeline(spec).fit(x, y[train_idx])
            return time.perf_counter() - started

        def govern_run() -> float:
            started = time.perf_counter()
            with transaction(factory) as session:
                run = service.create_run(session=session, spec_data=raw, actor="bench")
                run_id = run.id
            assert run_id is not None
            execute_run(settings, run_id)
            elapsed = time.perf_counter() - started
            with transaction(factory) as session:
                assert service.get_run(session=session, run_id=run_id).status == "succeeded"
            return elapsed

        bare_fit()
        govern_run()  # warm imports and caches for both paths
        bare, runs = [], []
        for _ in range(args.repeats):
            bare.append(bare_fit())
            runs.append(govern_run())
        engine.dispose()

    result = {
        "rows": args.rows,
        "repeats": args.repeats,
        "bare_fit_median_s": round(statistics.median(bare), 3),
        "govern_run_median_s": round(statistics.median(runs), 3),
        "ratio": round(statistics.median(runs) / statistics.median(bare), 2),
        "overhead_s": round(statistics.median(runs) - statistics.median(bare), 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
