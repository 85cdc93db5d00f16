"""A seeded loan book shaped like the real ones, not like the demo: opaque category codes,
integer-coded categories, yes/no columns, missing values, a small protected group, a feature
that is nearly a proxy for sex, and two ratios that always keep an order.

It is what the tests and the README's "Your own loan book" walk-through use, so every honest
output (``not_assessable``, ``insufficient_data``, value labels, plausible counterfactuals) is
shown on data that could have come from a lender. Columns, as a lender's export has them:

* ``checking_status``: codes A11 (below 0), A12 (0 to 200), A13 (200 or more), A14 (no checking
  account);
* ``employment``: integer codes 1 (unemployed) .. 5 (7 years or more);
* ``housing``: integer codes 1 (rent), 2 (own), 3 (for free);
* ``income``: monthly income, missing for about 8% of applicants;
* ``payments_to_income`` and ``housing_to_income``: housing costs are part of the payments, so
  payments are never below housing;
* ``purpose``: text, missing for about 6%;
* ``has_guarantor``: "yes" / "no";
* ``marital_status``: codes A91..A94, which nearly determine ``sex`` (the proxy to find);
* ``age`` (a feature, and audited as protected), ``sex`` and ``foreign_worker`` (about 4% "yes":
  the small group);
* ``repaid``: "yes" / "no", the target. Unquoted in YAML, ``yes`` is a boolean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

CHECKING = {
    "A11": "Balance below 0",
    "A12": "Balance 0 to 200",
    "A13": "Balance 200 or more",
    "A14": "No checking account",
}
EMPLOYMENT = {
    1: "Unemployed",
    2: "Under 1 year",
    3: "1 to 4 years",
    4: "4 to 7 years",
    5: "7 years or more",
}
HOUSING = {1: "Rent", 2: "Own", 3: "For free"}
MARITAL = {
    "A91": "Male, divorced",
    "A92": "Female, divorced or married",
    "A93": "Male, single",
    "A94": "Male, married",
}
PURPOSES = ["car", "furniture", "education", "business", "repairs"]


def generate_loan_book(n: int = 1000, *, seed: int = 0) -> pd.DataFrame:
    if n <= 0:
        raise ValueError("n must be positive")
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], size=n, p=[0.35, 0.65])
    female = sex == "female"
    # A92 for women; men spread over A91, A93, A94; 2% recorded the other way round.
    men_codes = rng.choice(["A91", "A93", "A94"], size=n, p=[0.1, 0.6, 0.3])
    marital = np.where(female, "A92", men_codes)
    flip = rng.uniform(size=n) < 0.02
    marital = np.where(flip & female, "A93", np.where(flip & ~female, "A92", marital))
    age = np.clip(rng.gamma(6.0, 6.0, size=n) + 19, 19, 75).astype(int)
    foreign = np.where(rng.uniform(size=n) < 0.04, "yes", "no")
    checking = rng.choice(list(CHECKING), size=n, p=[0.27, 0.27, 0.06, 0.40])
    employment = np.clip(1 + rng.binomial(4, np.clip((age - 19) / 40, 0.1, 0.9)), 1, 5)
    housing = rng.choice(list(HOUSING), size=n, p=[0.18, 0.71, 0.11])
    income = np.round(rng.lognormal(7.8, 0.45, size=n), 0)
    payments = np.round(np.clip(rng.beta(2.0, 6.0, size=n) + 0.05, 0.05, 0.9), 3)
    housing_share = np.round(payments * rng.uniform(0.25, 1.0, size=n), 3)
    purpose = rng.choice(PURPOSES, size=n, p=[0.35, 0.25, 0.1, 0.15, 0.15]).astype(object)
    guarantor = np.where(rng.uniform(size=n) < 0.1, "yes", "no")
    amount = np.round(np.clip(rng.lognormal(7.9, 0.7, size=n), 250, 20_000), 0)

    checking_effect = pd.Series(checking).map({"A11": -0.9, "A12": -0.4, "A13": 0.2, "A14": 0.8})
    logit = (
        0.8
        + checking_effect.to_numpy()
        + 0.25 * (employment - 3)
        + 0.9 * (np.log(income) - 7.8)
        - 3.0 * (payments - 0.3)
        - 0.35 * (np.log(amount) - 7.9)
        + 0.012 * (age - 35)
        + np.where(housing == 2, 0.3, 0.0)
        + np.where(guarantor == "yes", 0.4, 0.0)
    )
    repaid = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-logit)), "yes", "no")

    income_col = pd.Series(income, dtype="float64")
    income_col[rng.uniform(size=n) < 0.08] = np.nan
    purpose[rng.uniform(size=n) < 0.06] = None
    return pd.DataFrame(
        {
            "checking_status": checking,
            "employment": employment.astype(int),
            "housing": housing.astype(int),
            "income": income_col,
            "payments_to_income": payments,
            "housing_to_income": housing_share,
            "loan_amount": amount,
            "purpose": purpose,
            "has_guarantor": guarantor,
            "marital_status": marital,
            "age": age,
            "sex": sex,
            "foreign_worker": foreign,
            "repaid": repaid,
        }
    )


def loan_book_spec(dataset: dict[str, Any], *, model: str = "loanbook", seed: int = 3) -> str:
    """The spec a lender would write for this book, as YAML text (with ``'yes'`` quoted)."""
    return f"""\
model: {model}
description: Probability that an applicant repays; approve at 0.5 and above.
intended_use: Consumer instalment loans, with human review of every denial.
dataset: {{name: "{dataset["name"]}", repo: "{dataset["repo"]}", path: "{dataset["path"]}", rev: "{dataset["rev"]}"}}
target: {{column: repaid, positive_class: 'yes'}}
features:
  - name: checking_status
    type: categorical
    description: Status of existing checking account
    labels: {{A11: Balance below 0, A12: Balance 0 to 200, A13: Balance 200 or more, A14: No checking account}}
    reasons: {{A11: Checking account overdrawn, A14: No checking account}}
    transitions: {{A11: [A12, A13], A12: [A13], A14: [A12, A13]}}
  - name: employment
    type: categorical
    description: Length of present employment
    labels: {{1: Unemployed, 2: Under 1 year, 3: 1 to 4 years, 4: 4 to 7 years, 5: 7 years or more}}
    order: [1, 2, 3, 4, 5]
    direction: increase
  - name: housing
    type: categorical
    description: Housing
    labels: {{1: Rent, 2: Own, 3: For free}}
    immutable: true
  - name: income
    type: numeric
    description: Income insufficient for the amount requested
    bounds: [0, 1000000]
    direction: increase
  - name: payments_to_income
    type: numeric
    description: Payments too high relative to income
    bounds: [0, 1]
    direction: decrease
  - name: housing_to_income
    type: numeric
    description: Housing costs relative to income
    bounds: [0, 1]
    immutable: true
  - name: loan_amount
    type: numeric
    description: Amount requested too high
    bounds: [100, 100000]
    direction: decrease
  - name: purpose
    type: categorical
    description: Purpose of the loan
  - name: has_guarantor
    type: categorical
    description: No guarantor
  - name: marital_status
    type: categorical
    description: Personal status
    immutable: true
  - name: age
    type: numeric
    description: Age of applicant
    bounds: [18, 100]
    immutable: true
constraints:
  - payments_to_income >= housing_to_income
protected:
  - name: sex
    values: [female, male]
  - name: foreign_worker
  - name: age
    type: numeric
    bins: [18, 25, 40, 60, 101]
    justification: >-
      Age is a factor of an empirically derived, demonstrably and statistically sound credit
      scoring system, and applicants 62 or older are not scored down (Reg B, 12 CFR 1002.6(b)(2)).
estimator:
  class: sklearn.ensemble.HistGradientBoostingClassifier
  params: {{max_iter: 120, learning_rate: 0.08, max_leaf_nodes: 15}}
seeds: {{split: {seed}, estimator: {seed}, explain: {seed}}}
validation: {{fraction: 0.25}}
gate: {{metric: roc_auc, threshold: 0.6}}
"""
