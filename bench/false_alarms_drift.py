"""False alarms and power of the drift verdict (``explain.drift.stats.compare``), by window size.

A seeded synthetic loan book with the shapes real ones have (``loan_book``): a skewed numeric
feature (income, log-normal), a numeric feature correlated with it (loan amount), an integer
count with heavy ties (late payments), a numeric feature with ~10% missing values (credit
history), an opaque-coded categorical with rare codes (1% and 0.5%, like the German credit
data's ``A4x`` purposes) and an integer-coded categorical (employment band 1-4, with a few missing so
the column holds floats, as pandas reads it). The model's training rows are 4,000 rows of it.

For each window size and seed, a fresh window of that size is drawn from the same generator
(seeded by scenario, size and seed), counted on the training grid exactly as the database
counts logged decisions, and compared by the pure comparison the API uses, at the default
settings (alpha 0.05, PSI floor 0.1, minimum 30 decisions, 999 permutations), with the seed as
the permutations' seed:

* null (no drift): the rate of ``drifted`` window verdicts is the false-alarm rate, which should
  be at most alpha (0.05);
* power: the rate of ``drifted`` verdicts when the window really moved: income shifted by 0.3,
  0.5 or 1 of its standard deviations; the share of purpose ``A41`` doubled (20% to 40%, the
  other codes scaled down); the missing rate of credit history raised from 10% to 20% (a PSI of
  about 0.08, under the 0.1 floor: by the rule not a shift that matters, so flagged only when
  sampling noise lifts it over 0.1) and to 30% (a PSI of about 0.27).

    python bench/false_alarms_drift.py [--seeds 200] [--sizes 30,100,1000,10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import Settings
from explain.drift import stats as drift
from lineage.input_schema import FeatureEntry

TRAINING_ROWS = 4000
PURPOSES = {
    "A40": 0.30,
    "A41": 0.20,
    "A42": 0.25,
    "A43": 0.135,
    "A49": 0.10,
    "A48": 0.01,
    "A410": 0.005,  # the rare code: an expected count of 0.28 in 53 decisions
}
EMPLOYMENT = {1: 0.15, 2: 0.35, 3: 0.30, 4: 0.20}
INCOME_SD = 22_000.0  # of the log-normal below, for the shifts in SD units
FEATURES = [
    FeatureEntry(name="income", type="numeric"),
    FeatureEntry(name="loan_amount", type="numeric"),
    FeatureEntry(name="late_payments", type="numeric"),
    FeatureEntry(name="credit_history_months", type="numeric"),
    FeatureEntry(name="purpose", type="categorical", categories=list(PURPOSES)),
    FeatureEntry(name="employment_band", type="categorical", categories=list(EMPLOYMENT)),
]


def defaults() -> dict[str, Any]:
    """The API's defaults (GOV_DRIFT_*), as compare's arguments."""
    fields = Settings.model_fields
    return {
        "alpha": fields["drift_alpha"].default,
        "psi_threshold": fields["drift_psi_threshold"].default,
        "min_samples": fields["drift_min_samples"].default,
        "resamples": fields["drift_resamples"].default,
    }


def loan_book(
    n: int,
    rng: np.random.Generator,
    *,
    income_shift_sd: float = 0.0,
    purposes: dict[str, float] | None = None,
    history_missing: float = 0.10,
) -> pd.DataFrame:
    """``n`` applications; the keywords move one feature's distribution (0 / None: none)."""
    base = np.exp(rng.normal(10.8, 0.4, n))
    income = base + income_shift_sd * INCOME_SD  # the shift moves income alone
    loan = base * 0.3 * np.exp(rng.normal(0.0, 0.35, n))
    history = np.round(rng.gamma(4.0, 20.0, n))
    history[rng.random(n) < history_missing] = np.nan
    shares = purposes or PURPOSES
    purpose = rng.choice(list(shares), size=n, p=list(shares.values()))
    band = rng.choice(list(EMPLOYMENT), size=n, p=list(EMPLOYMENT.values())).astype(float)
    band[rng.random(n) < 0.02] = np.nan  # a column of codes with gaps: pandas holds 2.0
    return pd.DataFrame(
        {
            "income": np.round(income, 2),
            "loan_amount": np.round(loan, 2),
            "late_payments": rng.poisson(0.6, n).astype(float),
            "credit_history_months": history,
            "purpose": purpose,
            "employment_band": band,
        }
    )


def as_logged(frame: pd.DataFrame) -> pd.DataFrame:
    """The window as decisions log it (JSON): integer codes as ints, a missing value as None."""
    logged = {}
    for name in frame.columns:
        column = frame[name]
        values = np.empty(len(column), dtype=object)
        present = column.notna().to_numpy()
        raw = column.to_numpy()[present]
        values[present] = (
            [int(v) for v in raw]
            if name == "employment_band"
            else [v.item() if hasattr(v, "item") else v for v in raw]
        )
        values[~present] = None
        logged[name] = values
    return pd.DataFrame(logged)


def doubled(code: str) -> dict[str, float]:
    """``code``'s share doubled, the others scaled down to make room."""
    rest = (1 - 2 * PURPOSES[code]) / (1 - PURPOSES[code])
    return {k: (2 * p if k == code else p * rest) for k, p in PURPOSES.items()}


class Reference:
    """A model's training rows on their grid, counted once."""

    def __init__(self, seed: int = 0) -> None:
        self.train = loan_book(TRAINING_ROWS, np.random.default_rng([seed, 0]))
        self.grids = drift.grids(FEATURES, self.train)
        self.counts = {g.name: drift.training_counts(g, self.train) for g in self.grids}

    def live(self, frame: pd.DataFrame) -> dict[str, Any]:
        """A window's counts on the grid, as the database counts logged decisions."""
        return {g.name: drift.training_counts(g, frame) for g in self.grids}

    def window(self, live: pd.DataFrame, seed: int, **options: Any) -> dict[str, Any]:
        """The drift report of a window at the API's defaults (``options`` override them)."""
        given = {**defaults(), **options}
        return drift.compare(
            self.grids,
            self.counts,
            self.live(live),
            given.pop("alpha"),
            given.pop("psi_threshold"),
            seed=seed,
            **given,
        )


SCENARIOS: dict[str, dict[str, Any]] = {
    "null (no drift)": {},
    "income +0.3 SD": {"income_shift_sd": 0.3},
    "income +0.5 SD": {"income_shift_sd": 0.5},
    "income +1 SD": {"income_shift_sd": 1.0},
    "purpose A41 share x2": {"purposes": doubled("A41")},
    "history missing 10% to 20%": {"history_missing": 0.20},
    "history missing 10% to 30%": {"history_missing": 0.30},
}


def rate(
    reference: Reference, size: int, seeds: int, stream: int, make: Callable[..., pd.DataFrame]
) -> float:
    flagged = 0
    for seed in range(seeds):
        live = as_logged(make(size, np.random.default_rng([stream, size, seed])))
        flagged += reference.window(live, seed)["verdict"] == "drifted"
    return flagged / seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--sizes", default="30,100,1000,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    reference = Reference()
    started = time.perf_counter()
    given = defaults()
    print(
        f"drift verdict over {args.seeds} seeds per cell; training rows {TRAINING_ROWS}; "
        f"alpha {given['alpha']}, PSI floor {given['psi_threshold']}, minimum "
        f"{given['min_samples']}, {given['resamples']} permutations"
    )
    header = f"| scenario | {' | '.join(f'n={s}' for s in sizes)} |"
    print(header)
    print("|---|" + "---:|" * len(sizes))
    for stream, (name, options) in enumerate(SCENARIOS.items(), start=1):

        def make(n: int, rng: np.random.Generator, options: dict[str, Any] = options) -> Any:
            return loan_book(n, rng, **options)

        cells = [f"{rate(reference, s, args.seeds, stream, make):.1%}" for s in sizes]
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
