"""Where a govern worker's time goes: py-spy's raw (collapsed) stacks, taken with ``--gil`` so that
only the thread holding the GIL is counted, sorted into the stages of a predict.

    python -m bench.profile_breakdown STACKS.txt

Each sample goes to the first stage, walking from the innermost frame outwards, whose pattern
matches a frame; what matches none is "other". Used by ``bench.predict_load --profile``.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# (stage, pattern on "function (file:line)"), innermost match wins.
STAGES: list[tuple[str, str]] = [
    ("out-of-distribution score", r"lineage/outliers\.py|outlier_fields"),
    ("scoring (compiled path)", r"serving/fastpath\.py|sklearn/|scoring\.py.*_score"),
    ("input checks", r"serving/validation\.py"),
    ("log: chain hashing and content", r"core/audit/(chain|ledger)\.py|serving/payload\.py"),
    ("log: database", r"sqlalchemy/|sqlite3|psycopg|serving/decision_log\.py"),
    ("metrics", r"prometheus_client/"),
    ("body decode", r"serving/decoding\.py|json/decoder|orjson"),
    ("auth", r"core/auth/"),
    ("body limits and checks", r"core/middleware\.py|serving/admission\.py|core/text\.py"),
    ("pydantic", r"pydantic"),
    ("response", r"responses\.py|serving/predict\.py.*_answer|encoders\.py"),
    ("FastAPI/Starlette routing and dependencies", r"fastapi/|starlette/"),
    ("thread hand-offs", r"anyio/|concurrent/futures|threading\.py|queue\.py"),
    ("HTTP parsing (uvicorn)", r"uvicorn/"),
    ("event loop", r"asyncio/"),
]
_COMPILED = [(name, re.compile(pattern)) for name, pattern in STAGES]


def breakdown(path: Path) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        samples = int(n)
        total += samples
        frames = stack.split(";")[1:]
        counts[_stage(frames)] += samples
    return counts, total


def _stage(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in _COMPILED:
            if pattern.search(frame):
                return name
    return "other"


def table(path: Path) -> str:
    counts, total = breakdown(path)
    lines = ["| stage | share of GIL-held samples |", "|---|---:|"]
    for name, n in counts.most_common():
        lines.append(f"| {name} | {n / total * 100:.1f}% |")
    lines.append(f"| (samples) | {total} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
