"""False alarms and power of the fairness verdict (``explain.fairness.stats.compare``), by group size.

For each scenario and group size, over ``--seeds`` seeds, the per-group counts of favourable
decisions are drawn as binomials (numpy, seeded by scenario, size and seed) and compared by the
pure comparison the API uses, at the default minimum group size (GOV_FAIRNESS_MIN_GROUP_SIZE):

* null: every group has the same selection rate (0.6): the rate of ``violated`` verdicts is the
  false-alarm rate, which should be at most the nominal alpha (0.05); the rates of ``holds``
  and ``not_assessable`` are printed beside it;
* power: the last group's rate is 0.6 x 0.6 = 0.36 (a true disparate impact ratio of 0.6):
  the rate of ``violated`` verdicts.

Scenarios: two equal groups; three equal groups; two groups and a third ten times smaller
(unbalanced; in the power rows the small group is the one disadvantaged).

    python bench/false_alarms_fairness.py [--seeds 200] [--sizes 30,100,1000,10000]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import Settings
from explain.fairness.stats import HOLDS, NOT_ASSESSABLE, VIOLATED, GroupCounts, compare, wilson

RATE = 0.6
TRUE_DI = 0.6
MIN_GROUP_SIZE: int = Settings.model_fields["fairness_min_group_size"].default
SCENARIOS: dict[str, Callable[[int], list[int]]] = {
    "2 equal groups": lambda n: [n, n],
    "3 equal groups": lambda n: [n, n, n],
    "unbalanced (n, n, n/10)": lambda n: [n, n, max(1, n // 10)],
}


def verdicts(sizes: list[int], rates: list[float], seeds: int, stream: int) -> Counter[str]:
    counted: Counter[str] = Counter()
    names = [chr(ord("A") + i) for i in range(len(sizes))]
    for seed in range(seeds):
        rng = np.random.default_rng([stream, seed])
        groups = [
            GroupCounts(key=(name,), n=n, selected=int(rng.binomial(n, p)))
            for name, n, p in zip(names, sizes, rates, strict=True)
        ]
        report = compare(groups, ["group"], MIN_GROUP_SIZE, seed=seed, resamples=1_999)
        counted[report["four_fifths_verdict"]] += 1
    return counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--sizes", default="30,100,1000,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"selection rate {RATE} in every group (null) or {RATE * TRUE_DI:.2f} in the last "
        f"(power, true DI {TRUE_DI}); minimum group size {MIN_GROUP_SIZE}; "
        f"{args.seeds} seeds per row; alpha 0.05"
    )
    header = (
        f"{'scenario':<26}{'n per group':>18}{'false alarms':>14}{'(95% upper)':>13}"
        f"{'holds':>8}{'not_assess.':>13}{'power':>8}"
    )
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    for stream, (scenario, shape) in enumerate(SCENARIOS.items()):
        for size in sizes:
            groups = shape(size)
            null = verdicts(groups, [RATE] * len(groups), args.seeds, 2 * (stream * 100 + size))
            shifted = [RATE] * (len(groups) - 1) + [RATE * TRUE_DI]
            power = verdicts(groups, shifted, args.seeds, 2 * (stream * 100 + size) + 1)
            alarms = null[VIOLATED]
            upper = (wilson(alarms, args.seeds) or (math.nan, math.nan))[1]
            print(
                f"{scenario:<26}{'/'.join(map(str, groups)):>18}"
                f"{alarms / args.seeds:>14.3f}{upper:>13.3f}"
                f"{null[HOLDS] / args.seeds:>8.3f}{null[NOT_ASSESSABLE] / args.seeds:>13.3f}"
                f"{power[VIOLATED] / args.seeds:>8.3f}"
            )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
