"""The proxy report on seeded synthetic loan books: coded and integer categories, missing values,
small groups, non-monotone relations, and a score."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.naive_bayes import CategoricalNB
from sklearn.tree import DecisionTreeClassifier

from lineage.proxies import FOLDS, MIN_GROUP_ROWS, TREE_DEPTH, proxy_report


def _loan_book(n: int, seed: int) -> tuple[pd.DataFrame, dict[str, str], dict[str, pd.Series]]:
    """A loan book shaped like the German credit data: coded categories (A91..A94), an
    integer-coded category, numeric columns with missing values, an age band in the middle of
    which one feature peaks, and a protected attribute with a missing value."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n, p=[0.35, 0.65])
    # marital_status almost determines sex: A92 is "female: divorced/married", A93/A94 male.
    marital = np.where(sex == "female", "A92", np.where(rng.random(n) < 0.7, "A93", "A94")).astype(
        object
    )
    flip = rng.random(n) < 0.03
    marital[flip] = rng.choice(["A91", "A92", "A93"], int(flip.sum()))
    age = rng.integers(18, 62, n)  # as many young (18-29) as old (50-61)
    band = np.select([age < 30, age < 50], ["[18, 30)", "[30, 50)"], "[50, 100)")
    # utilisation peaks in the middle band, low for the young and high for the old: a
    # non-monotone relation to "is in [30, 50)".
    centre = np.select([age < 30, age < 50], [0.15, 0.5], 0.85)
    utilisation = centre + rng.normal(0, 0.04, n)
    utilisation[rng.random(n) < 0.1] = np.nan
    income = rng.lognormal(10, 0.5, n)
    income[rng.random(n) < 0.08] = np.nan
    purpose = rng.integers(0, 10, n).astype(str).astype(object)
    purpose[rng.random(n) < 0.05] = np.nan
    features = pd.DataFrame(
        {
            "marital_status": marital,
            "utilisation": utilisation,
            "income": income,
            "purpose": purpose,
            "duration_months": rng.choice([6, 12, 18, 24, 36, 48], n).astype(float),
        }
    )
    types = {
        "marital_status": "categorical",
        "utilisation": "numeric",
        "income": "numeric",
        "purpose": "categorical",
        "duration_months": "numeric",
    }
    sex_labels = pd.Series(sex, dtype=object)
    sex_labels[rng.random(n) < 0.02] = "missing"
    protected = {"sex": sex_labels, "age_band": pd.Series(band, dtype=object)}
    return features, types, protected


@pytest.fixture(scope="module")
def book() -> tuple[pd.DataFrame, dict[str, str], dict[str, pd.Series]]:
    return _loan_book(3000, seed=11)


@pytest.fixture(scope="module")
def report(book) -> dict:
    features, types, protected = book
    return proxy_report(features, types, protected, None, seed=5)


def _entry(report: dict, attribute: str, feature: str) -> dict:
    return next(f for f in report["attributes"][attribute]["features"] if f["feature"] == feature)


def test_marital_status_that_almost_determines_sex_is_the_named_top_proxy(report) -> None:
    sex = report["attributes"]["sex"]
    assert sex["status"] == "assessed"
    assert sex["features"][0]["feature"] == "marital_status"
    auc = sex["features"][0]["auc"]
    assert auc > 0.9
    assert sex["features"][0]["mutual_information"] > 0.3
    assert sex["top_proxies"] == ["marital_status"]
    assert f"marital_status predicts sex with AUC {auc:.2f}" in report["summary"]
    # features sorted by AUC, best first
    aucs = [f["auc"] for f in sex["features"]]
    assert aucs == sorted(aucs, reverse=True)


def test_independent_features_are_near_half_and_not_proxies(report) -> None:
    for attribute in ("sex", "age_band"):
        for feature in ("income", "purpose", "duration_months"):
            entry = _entry(report, attribute, feature)
            assert 0.4 <= entry["auc"] <= 0.6, (attribute, feature, entry)
            assert entry["mutual_information"] < 0.02
            assert feature not in report["attributes"][attribute]["top_proxies"]
    assert not any(line.startswith(("income", "purpose")) for line in report["summary"])


def test_a_non_monotone_numeric_relation_to_an_age_band_is_caught(book, report) -> None:
    features, _, protected = book
    middle = (protected["age_band"] == "[30, 50)").to_numpy()
    present = features["utilisation"].notna().to_numpy()
    # premise: ranking by utilisation itself tells almost nothing about being in the middle band,
    # so a monotone model (a logistic regression) would miss this proxy
    monotone = roc_auc_score(middle[present], features["utilisation"].to_numpy()[present])
    assert 0.35 < monotone < 0.65
    age_band = report["attributes"]["age_band"]
    entry = _entry(report, "age_band", "utilisation")
    assert age_band["groups_assessed"] == ["[18, 30)", "[30, 50)", "[50, 100)"]
    assert entry["group_auc"]["[30, 50)"] > 0.85
    assert entry["auc"] > 0.85
    assert age_band["top_proxies"][0] == "utilisation"
    assert (
        f"utilisation predicts age_band with AUC {entry['auc']:.2f} (macro over 3 groups)"
        in report["summary"]
    )


def test_macro_auc_is_the_unweighted_mean_of_the_groups_and_catches_a_small_group() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    race = rng.choice(["a", "b", "c", "d"], n, p=[0.6, 0.25, 0.12, 0.03])
    # region identifies the small group d and nothing else
    region = np.where(race == "d", "R9", rng.choice(["R1", "R2", "R3"], n)).astype(object)
    features = pd.DataFrame({"region": region})
    result = proxy_report(
        features, {"region": "categorical"}, {"race": pd.Series(race)}, None, seed=1
    )
    entry = result["attributes"]["race"]["features"][0]
    assert entry["group_auc"]["d"] > 0.95
    assert all(0.4 < entry["group_auc"][g] < 0.65 for g in ("a", "b", "c"))
    assert entry["auc"] == pytest.approx(np.mean(list(entry["group_auc"].values())), abs=1e-4)
    # weighted by group size it would be about 0.51; macro counts the small group fully
    weights = np.array([(race == g).mean() for g in "abcd"])
    weighted = float(np.dot(weights, [entry["group_auc"][g] for g in "abcd"]))
    assert entry["auc"] > weighted + 0.05
    assert result["attributes"]["race"]["n"] == n


def test_integer_coded_categories_are_one_level_whatever_their_python_type() -> None:
    rng = np.random.default_rng(8)
    n = 1500
    foreign = rng.choice(["no", "yes"], n, p=[0.8, 0.2])
    code = np.where(foreign == "yes", rng.choice([1, 2], n), rng.choice([3, 4], n))
    as_text = pd.DataFrame({"job": code.astype(str).astype(object)})
    as_int = pd.DataFrame({"job": code.astype(int)})
    # the same codes as a real CSV gives them: ints, floats equal to them, and strings, mixed
    mixed_values = code.astype(object)
    mixed_values[::3] = code[::3].astype(float)
    mixed_values[1::3] = code[1::3].astype(str)
    mixed = pd.DataFrame({"job": mixed_values})
    protected = {"foreign_worker": pd.Series(foreign)}
    types = {"job": "categorical"}
    reports = [
        proxy_report(frame, types, protected, None, seed=4) for frame in (as_text, as_int, mixed)
    ]
    entries = [r["attributes"]["foreign_worker"]["features"] for r in reports]
    assert entries[0] == entries[1] == entries[2]
    assert entries[0][0]["auc"] > 0.99
    assert entries[0][0]["type"] == "categorical"
    # a genuinely different category ("2" vs "20") stays a different level
    shifted = as_text.copy()
    shifted.loc[foreign == "yes", "job"] = shifted.loc[foreign == "yes", "job"] + "0"
    other = proxy_report(shifted, types, protected, None, seed=4)
    assert other["attributes"]["foreign_worker"]["features"][0]["auc"] > 0.99


def test_missing_values_are_a_value_of_their_own_and_unknown_groups_are_left_out() -> None:
    rng = np.random.default_rng(21)
    n = 2000
    sex = rng.choice(["female", "male"], n)
    # the only signal is missingness: women's income and employer are unrecorded more often
    income = rng.normal(3000, 500, n)
    income[(sex == "female") & (rng.random(n) < 0.8)] = np.nan
    employer = rng.choice(["E1", "E2", "E3"], n).astype(object)
    employer[(sex == "female") & (rng.random(n) < 0.8)] = np.nan
    labels = pd.Series(sex, dtype=object)
    labels[:40] = "missing"
    labels[40:60] = np.nan
    features = pd.DataFrame({"income": income, "employer": employer})
    result = proxy_report(
        features,
        {"income": "numeric", "employer": "categorical"},
        {"sex": labels},
        None,
        seed=2,
    )
    sex_report = result["attributes"]["sex"]
    assert sex_report["status"] == "assessed"
    assert sex_report["n"] == n - 60
    assert sex_report["groups_left_out"] == {"missing": 60}
    assert sex_report["groups_assessed"] == ["female", "male"]
    assert any("unknown" in note and "'missing' (60 rows)" in note for note in sex_report["notes"])
    assert _entry(result, "sex", "income")["auc"] > 0.85
    assert _entry(result, "sex", "employer")["auc"] > 0.85
    assert set(sex_report["top_proxies"]) == {"income", "employer"}


def test_a_tiny_group_is_left_out_with_a_note_and_one_usable_group_is_not_assessable() -> None:
    rng = np.random.default_rng(13)
    n = 1000
    marital = rng.choice(["A91", "A92", "A93"], n).astype(object)
    three = np.array(["female"] * 500 + ["male"] * 495 + ["x"] * 5, dtype=object)
    one = np.array(["b"] * (n - 8) + ["a"] * 8, dtype=object)
    marital[-5:] = "A95"  # the tiny group is perfectly identified, yet too small to count
    result = proxy_report(
        pd.DataFrame({"marital_status": marital}),
        {"marital_status": "categorical"},
        {"sex": pd.Series(three), "minority": pd.Series(one)},
        rng.random(n),
        seed=9,
    )
    sex = result["attributes"]["sex"]
    assert sex["status"] == "assessed"
    assert sex["groups"] == {"female": 500, "male": 495, "x": 5}
    assert sex["groups_left_out"] == {"x": 5}
    assert sex["n"] == 995
    assert any(
        f"fewer than {MIN_GROUP_ROWS} rows" in note and "'x' (5 rows)" in note
        for note in sex["notes"]
    )
    assert "x" not in sex["features"][0]["group_auc"]
    minority = result["attributes"]["minority"]
    assert minority["status"] == "not_assessable"
    assert "'b' (992 rows)" in minority["reason"]
    assert "two" in minority["reason"]
    assert minority["groups_left_out"] == {"a": 8}
    assert minority["features"] == []
    assert minority["score"] is None
    assert minority["top_proxies"] == []
    assert any(line.startswith("minority: proxies not assessable") for line in result["summary"])


def test_same_inputs_and_seed_give_the_same_report_and_large_inputs_are_subsampled() -> None:
    features, types, protected = _loan_book(2500, seed=17)
    score = np.random.default_rng(2).random(2500)
    first = proxy_report(features, types, protected, score, seed=3, max_rows=1000)
    second = proxy_report(features, types, protected, score, seed=3, max_rows=1000)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first["rows"] == 2500
    assert first["rows_used"] == 1000
    assert first["subsampled"] is True
    assert first["seed"] == 3
    assert sum(first["attributes"]["age_band"]["groups"].values()) == 1000
    other = proxy_report(features, types, protected, score, seed=4, max_rows=1000)
    assert other["attributes"]["age_band"]["groups"] != first["attributes"]["age_band"]["groups"]
    whole = proxy_report(features, types, protected, score, seed=3)
    assert whole["rows_used"] == 2500
    assert whole["subsampled"] is False


def test_the_score_auc_is_reported_when_a_score_is_given(book) -> None:
    features, types, protected = book
    rng = np.random.default_rng(6)
    female = (protected["sex"] == "female").to_numpy()
    score = np.clip(0.55 - 0.2 * female + rng.normal(0, 0.1, len(female)), 0, 1)
    result = proxy_report(features, types, protected, score, seed=5)
    sex_score = result["attributes"]["sex"]["score"]
    assert sex_score["auc"] > 0.8
    assert set(sex_score["group_auc"]) == {"female", "male"}
    assert "score" not in result["attributes"]["sex"]["top_proxies"]
    assert f"the model score predicts sex with AUC {sex_score['auc']:.2f}" in result["summary"]
    assert 0.4 <= result["attributes"]["age_band"]["score"]["auc"] <= 0.6
    without = proxy_report(features, types, protected, None, seed=5)
    assert without["attributes"]["sex"]["score"] is None
    assert not any("model score" in line for line in without["summary"])


def test_figures_equal_scikit_learns_own_cross_validated_classifiers_on_the_rows() -> None:
    """The report fits each fold on a table of (level, group) counts; the figures must be those of
    the same classifiers cross-validated on the raw rows."""
    rng = np.random.default_rng(31)
    n = 1200
    group = rng.choice(["g1", "g2", "g3"], n, p=[0.5, 0.3, 0.2])
    home = np.where(rng.random(n) < 0.6, group, rng.choice(["g1", "g2", "g3"], n)).astype(object)
    home[rng.random(n) < 0.05] = np.nan
    years = np.where(group == "g2", rng.integers(0, 10, n), rng.integers(5, 40, n)).astype(float)
    years[rng.random(n) < 0.07] = np.nan
    features = pd.DataFrame({"home": home, "years": years})
    seed = 12
    result = proxy_report(
        features,
        {"home": "categorical", "years": "numeric"},
        {"g": pd.Series(group)},
        None,
        seed=seed,
    )
    y = np.searchsorted(["g1", "g2", "g3"], group)
    folds = list(StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed).split(years, y))
    home_codes = pd.factorize(pd.Series(home).fillna("~missing"), sort=True)[0].reshape(-1, 1)
    nb = CategoricalNB(alpha=1.0, min_categories=int(home_codes.max()) + 1)
    tree = DecisionTreeClassifier(
        max_depth=TREE_DEPTH, min_samples_leaf=MIN_GROUP_ROWS, random_state=seed
    )
    expected = {
        "home": cross_val_predict(nb, home_codes, y, cv=folds, method="predict_proba"),
        "years": cross_val_predict(tree, years.reshape(-1, 1), y, cv=folds, method="predict_proba"),
    }
    for name, proba in expected.items():
        entry = _entry(result, "g", name)
        macro = roc_auc_score(y, proba, multi_class="ovr", average="macro")
        assert entry["auc"] == pytest.approx(macro, abs=1e-4), name
    assert _entry(result, "g", "years")["auc"] > 0.75


def test_a_feature_that_is_the_attribute_itself_is_not_scored_against_it() -> None:
    rng = np.random.default_rng(4)
    age = rng.integers(18, 80, 600).astype(float)
    features = pd.DataFrame({"age": age, "amount": rng.normal(size=600)})
    result = proxy_report(
        features,
        {"age": "numeric", "amount": "numeric"},
        {"age": pd.Series(np.where(age < 40, "young", "old"))},
        None,
        seed=1,
    )
    report = result["attributes"]["age"]
    assert [f["feature"] for f in report["features"]] == ["amount"]
    assert any("is the attribute itself" in note for note in report["notes"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature_types": {"x": "ordinal"}}, "feature_types['x']"),
        ({"feature_types": {"nope": "numeric"}}, "'nope'"),
        ({"protected": {"sex": pd.Series(["a"] * 5)}}, "protected['sex']"),
        ({"score": np.zeros(3)}, "score"),
    ],
)
def test_inputs_that_do_not_fit_together_are_refused_naming_the_argument(kwargs, message) -> None:
    arguments = {
        "features": pd.DataFrame({"x": np.arange(20.0)}),
        "feature_types": {"x": "numeric"},
        "protected": {"sex": pd.Series(["a", "b"] * 10)},
        "score": None,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        proxy_report(seed=0, **arguments)
