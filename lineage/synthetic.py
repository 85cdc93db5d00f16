"""A seeded synthetic loan book, with a knob that injects a known bias.

Used by the demo and the tests: govern never downloads data. The bias works the way historical
bias does: the disadvantaged group (``sex == "F"``) has lower recorded incomes and, at ``bias``
above zero, worse recorded repayment for the same risk. A model that never sees ``sex`` still
learns it through income, so its decisions show disparate impact, which the fairness report
must find.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

FEATURES = (
    "income",
    "debt_to_income",
    "credit_history_months",
    "late_payments",
    "employment_years",
    "loan_amount",
    "purpose",
    "housing",
)
NUMERIC = (
    "income",
    "debt_to_income",
    "credit_history_months",
    "late_payments",
    "employment_years",
    "loan_amount",
)
PURPOSES = ["car", "home", "education", "business", "personal"]
HOUSING = ["own", "rent", "mortgage"]


def generate_loans(n: int, *, seed: int, bias: float = 0.0) -> pd.DataFrame:
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0.0 <= bias <= 1.0:
        raise ValueError("bias must be between 0 and 1")
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], size=n)
    age = rng.integers(18, 81, size=n)
    female = sex == "F"

    income = rng.lognormal(mean=10.8, sigma=0.45, size=n)
    income = np.where(female, income * (1.0 - 0.45 * bias), income)
    employment_years = np.clip(
        rng.gamma(2.0, 3.0, size=n) * np.minimum(1.0, (age - 17) / 20), 0, 45
    )
    debt_to_income = np.clip(rng.beta(2.0, 5.0, size=n), 0.0, 1.0)
    credit_history_months = np.clip((age - 18) * 12 * rng.uniform(0.3, 1.0, size=n), 0, 720)
    late_payments = rng.poisson(0.8, size=n)
    loan_amount = np.clip(rng.lognormal(9.3, 0.6, size=n), 500, 100_000)
    purpose = rng.choice(PURPOSES, size=n, p=[0.25, 0.2, 0.15, 0.15, 0.25])
    housing = rng.choice(HOUSING, size=n, p=[0.3, 0.4, 0.3])

    logit = (
        1.4 * (np.log(income) - 10.8)
        - 3.0 * (debt_to_income - 0.28)
        + 0.015 * (credit_history_months / 12)
        - 0.55 * late_payments
        + 0.04 * employment_years
        - 0.35 * (np.log(loan_amount) - 9.3)
        + np.where(housing == "own", 0.3, 0.0)
        + np.where(purpose == "business", -0.3, 0.0)
        + 0.9
    )
    logit = logit - 1.2 * bias * female
    repaid = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)

    return pd.DataFrame(
        {
            "income": np.round(income, 2),
            "debt_to_income": np.round(debt_to_income, 4),
            "credit_history_months": credit_history_months.astype(int),
            "late_payments": late_payments.astype(int),
            "employment_years": np.round(employment_years, 1),
            "loan_amount": np.round(loan_amount, 2),
            "purpose": purpose,
            "housing": housing,
            "sex": sex,
            "age": age.astype(int),
            "repaid": repaid,
        }
    )


def applicant_features(row: dict[Any, Any]) -> dict[str, Any]:
    """One generated row as a predict request's features: numbers as float, categories as str."""
    return {k: float(row[k]) if k in NUMERIC else str(row[k]) for k in FEATURES}


def demo_spec(
    *, model: str = "credit", dataset: dict[str, object], seed: int = 7
) -> dict[str, object]:
    """A complete training spec for the synthetic loan book."""
    return {
        "model": model,
        "description": "Probability that a loan applicant repays; approve at 0.5 and above.",
        "intended_use": "Consumer loan approval decisions with human review of denials. "
        "Not for pricing, collections or employment decisions.",
        "dataset": dataset,
        "target": {"column": "repaid", "positive_class": 1},
        "features": [
            {
                "name": "income",
                "type": "numeric",
                "description": "Income insufficient for the amount requested",
                "bounds": [0, 10_000_000],
                "direction": "increase",
            },
            {
                "name": "debt_to_income",
                "type": "numeric",
                "description": "Debt obligations too high relative to income",
                "bounds": [0, 1],
                "direction": "decrease",
            },
            {
                "name": "credit_history_months",
                "type": "numeric",
                "description": "Length of credit history too short",
                "bounds": [0, 1200],
                "immutable": True,
            },
            {
                "name": "late_payments",
                "type": "numeric",
                "description": "Delinquent past or present credit obligations",
                "bounds": [0, 100],
                "immutable": True,
            },
            {
                "name": "employment_years",
                "type": "numeric",
                "description": "Length of employment too short",
                "bounds": [0, 60],
                "direction": "increase",
            },
            {
                "name": "loan_amount",
                "type": "numeric",
                "description": "Amount requested too high",
                "bounds": [100, 1_000_000],
                "direction": "decrease",
            },
            {
                "name": "purpose",
                "type": "categorical",
                "description": "Purpose of the loan",
                "categories": PURPOSES,
            },
            {
                "name": "housing",
                "type": "categorical",
                "description": "Housing status",
                "categories": HOUSING,
                "immutable": True,
            },
        ],
        "protected": [
            {"name": "sex", "type": "categorical"},
            {"name": "age", "type": "numeric", "bins": [18, 25, 40, 60, 120]},
        ],
        "estimator": {
            "class": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 150, "learning_rate": 0.08, "max_leaf_nodes": 15},
        },
        "seeds": {"split": seed, "estimator": seed},
        "validation": {"fraction": 0.25, "stratify": True},
        "gate": {"metric": "roc_auc", "threshold": 0.65},
    }
