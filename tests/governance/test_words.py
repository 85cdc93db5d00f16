"""Words a person reads (issue 17, section 3): the dossier, the model card and the command line
say the decision as "approved" or "denied", show the threshold beside a score rounded for
reading (never across the threshold), labels beside codes, "missing" for a null, no Python
representation; the dossier is complete (outcome, rebuild, anchor, robustness, replay, live
fairness); the card flags overfitting, names the owner's key, shows each protected attribute's
live fairness on its own and small cells as "fewer than N".

The database tests run on the loan book shaped like a lender's export (``served_book``): codes
with labels (A11 = "Balance below 0"), integer codes (employment 2 = "Under 1 year"), a string
target ("yes"/"no"), income missing, age both a feature and protected.
"""

from __future__ import annotations

import html
import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from rich.console import Console
from sqlmodel import Session
from typer.testing import CliRunner

from core.auth.models import Role
from core.config import Settings
from core.db import session_factory, transaction
from governance.cli import app as cli
from governance.cli import lineage as lineage_cli
from governance.compliance import card as card_module
from governance.compliance.dossier import (
    class_in_words,
    decision_in_words,
    decision_words,
    outlier_in_words,
    score_in_words,
)
from governance.compliance.html import readable
from lineage import registry
from lineage.input_schema import FeatureEntry, InputSchema, MissingPolicy
from rebuild import service as rebuild_service
from serving.models import DecisionRecord
from tests.conftest import KeyMaker, Served
from tests.explain.test_external_explained import _external
from tests.support.factories import (
    DataRepo,
    applicant,
    book_applicant,
    loan_book_yaml,
    promote,
    wait_for_run,
)

VERDICTS = {"holds", "violated", "not_assessable"}
BOOK_DOCUMENT = {
    "classes": ["no", "yes"],
    "positive_class": "yes",
    "favourable_class": "yes",
    "threshold": 0.5,
    "target": "repaid",
    "features": [
        {
            "name": "checking_status",
            "type": "categorical",
            "labels": {"A11": "Balance below 0", "A14": "No checking account"},
        },
        {"name": "employment", "type": "categorical", "labels": {"2": "Under 1 year"}},
        {"name": "income", "type": "numeric"},
    ],
    "protected": [],
}
BOOK = InputSchema.from_document(BOOK_DOCUMENT)


def _text(page: str) -> str:
    """The words of a page, without its tags, style and chart."""
    page = re.sub(r"<style>.*?</style>|<svg.*?</svg>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _no_python_reprs(page: str) -> None:
    words = _text(page)
    assert not re.search(r"\b(True|False|None)\b", words), re.findall(
        r".{40}\b(?:True|False|None)\b.{10}", words
    )
    assert "{'" not in words and "['" not in words, "a dict or list repr"
    assert not re.search(r"\blabel [\w'\"]", words), "a decision is never 'label 0'"


# Pure: the words themselves --------------------------------------------------------------------


def test_a_score_is_rounded_for_reading_but_never_across_the_threshold() -> None:
    assert score_in_words(BOOK, 0.38123) == "score 0.38 (approved at 0.50 or above)"
    assert score_in_words(BOOK, 0.5) == "score 0.50 (approved at 0.50 or above)"
    # 0.4996 would read 0.50, the threshold itself, for a denial: more digits are shown.
    assert score_in_words(BOOK, 0.4996) == "score 0.4996 (approved at 0.5000 or above)"
    assert score_in_words(BOOK, 0.50004) == "score 0.50 (approved at 0.50 or above)"
    words = decision_in_words(BOOK, "no", 0.4996, {"income": None, "checking_status": "A11"})
    assert words["decision"] == "denied" and words["favourable"] is False
    assert words["score"] == 0.4996 and words["threshold"] == 0.5, "exact values stay"
    assert words["text"] == "denied: score 0.4996 (approved at 0.5000 or above)"
    texts = {f["name"]: f["text"] for f in words["features"]}
    assert texts == {
        "checking_status": "Balance below 0 (A11)",
        "employment": "missing",
        "income": "missing",
    }
    assert class_in_words(BOOK, "yes") == "approved (class yes)"
    assert decision_words(BOOK) == {
        "favourable": "approved",
        "unfavourable": "denied",
        "source": "default",
    }

    # A model of default risk: the positive class (1 = default) is the unfavourable one, so an
    # applicant is approved below the threshold.
    risk = InputSchema.from_document(
        {**BOOK_DOCUMENT, "classes": [0, 1], "positive_class": 1, "favourable_class": 0}
    )
    assert score_in_words(risk, 0.31) == "score 0.31 (approved below 0.50)"
    assert decision_in_words(risk, 1, 0.61)["decision"] == "denied"
    assert class_in_words(risk, "0") == "approved (class 0)", "the logged text form too"
    named = InputSchema.from_document(
        {**BOOK_DOCUMENT, "decision_words": {"favourable": "accepted", "unfavourable": "declined"}}
    )
    assert decision_in_words(named, "no", 0.2)["decision"] == "declined"
    assert decision_words(named)["source"] == "spec"


def test_the_outlier_score_is_shown_with_its_threshold() -> None:
    assert (
        outlier_in_words(4.1, False, 6.2)["text"]
        == "outlier score 4.1 (threshold 6.2): within the training distribution"
    )
    # 6.24 > 6.2 would read 6.2 against 6.2: one more digit.
    assert outlier_in_words(6.24, True, 6.2)["text"] == (
        "outlier score 6.24 (threshold 6.20): outside the training distribution (an outlier)"
    )
    assert "no out-of-distribution detector" in outlier_in_words(None, None, None)["text"]


def test_values_in_html_are_words_not_python_reprs() -> None:
    assert readable({"split": 7, "estimator": 7}) == "split 7, estimator 7"
    assert readable(True) == "yes" and readable(False) == "no"
    assert readable(None) == "not recorded" and readable(None, "missing") == "missing"
    assert readable({"code": {"dirty": False}, "seeds": [1, 2]}) == "code (dirty no), seeds 1, 2"
    assert readable(0.123456789) == "0.123457"


def test_overfitting_is_flagged_beyond_the_documented_gap() -> None:
    wide = card_module.overfitting({"train": {"roc_auc": 0.96}, "validation": {"roc_auc": 0.75}})
    assert wide["flagged"] is True and wide["gap"] == pytest.approx(0.21)
    assert wide["threshold"] == card_module.OVERFITTING_AUC_GAP == 0.05
    assert wide["train_auc"] == 0.96 and wide["validation_auc"] == 0.75
    assert "Flagged as overfitting" in wide["text"]
    edge = card_module.overfitting({"train": {"roc_auc": 0.80}, "validation": {"roc_auc": 0.75}})
    assert edge["flagged"] is False, "a gap of exactly 0.05 is within it"
    # A small validation set: a large gap, but too few rows of one class to say anything.
    small = card_module.overfitting(
        {
            "train": {"roc_auc": 0.99, "n": 150, "positive_rate": 0.9},
            "validation": {"roc_auc": 0.70, "n": 50, "positive_rate": 0.9},
        }
    )
    assert small["flagged"] is None and small["gap"] is None
    assert "5 rows of its smaller class" in small["text"]
    large = card_module.overfitting(
        {
            "train": {"roc_auc": 0.99, "n": 1500, "positive_rate": 0.9},
            "validation": {"roc_auc": 0.70, "n": 500, "positive_rate": 0.9},
        }
    )
    assert large["flagged"] is True
    external = card_module.overfitting({"all_rows": {"roc_auc": 0.8}, "note": "all rows"})
    assert external["flagged"] is None and "not assessed" in external["text"]
    assert card_module.missing_value_policy(
        FeatureEntry(
            name="income",
            type="numeric",
            nullable=True,
            missing_in_training=49,
            missing=MissingPolicy(impute="median", fill_value=2516.0),
        )
    ) == ("49 missing in training; null accepted at predict; filled with the training median 2516")
    assert card_module.missing_value_policy(
        FeatureEntry(
            name="income",
            type="numeric",
            nullable=False,
            missing_in_training=0,
            missing=MissingPolicy(impute="constant"),
        )
    ) == ("none missing in training; null refused at predict; filled with the constant")
    assert card_module.missing_value_policy(FeatureEntry(name="x", type="numeric")) is None, (
        "nothing recorded: said so"
    )


# The dossier ------------------------------------------------------------------------------------


def _decide(client: TestClient, headers: dict[str, str], features: dict, sex: str) -> Any:
    response = client.post(
        "/api/v1/endpoints/lending/predict",
        headers=headers,
        json={"features": features, "context": {"sex": sex, "foreign_worker": "no"}},
    )
    assert response.status_code == 200, response.text
    return response.json()


def _decisions(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        table = DecisionRecord.__table__
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _rebuild(settings: Settings, engine: sa.Engine, version: int) -> str:
    """A real rebuild of the version, in process; its verdict."""
    factory = session_factory(engine)
    with transaction(factory) as session:
        model, found = registry.get_version(session=session, name="loanbook", version=version)
        job, _created = rebuild_service.create_rebuild(
            session=session, model=model, version=found, actor="test", executor="in-process"
        )
        rebuild_id = job.id
    assert rebuild_id is not None
    rebuild_service.execute_rebuild(settings, rebuild_id)
    with transaction(factory) as session:
        verdict = rebuild_service.get_rebuild(session, rebuild_id).verdict
    assert verdict is not None
    return verdict


def test_the_dossier_speaks_the_domain_and_is_complete(
    client: TestClient, auth: Any, served_book: Served, settings: Settings, engine: sa.Engine
) -> None:
    predictor = auth(Role.predictor)
    first = _decide(client, predictor, book_applicant(income=None), "female")
    assert first["label"] == "no" and abs(first["score"] - 0.5) > 0.005  # seeded: a denial
    for i in range(29):
        features = book_applicant(income=1500.0 + 200 * i, checking_status=["A11", "A14"][i % 2])
        _decide(client, predictor, features, ["female", "male"][i % 2])
    decision = first["decision_id"]
    outcomes = auth(Role.outcomes)
    for outcome in ("yes", "no"):  # the second corrects the first
        recorded = client.post(
            f"/api/v1/decisions/{decision}/outcome",
            headers=outcomes,
            json={"outcome": outcome, "observed_at": datetime.now(UTC).isoformat()},
        )
        assert recorded.status_code == 201, recorded.text
    scientist = auth(Role.data_scientist)
    anchor = client.get(f"/api/v1/decisions/{decision}/explanations/anchor", headers=scientist)
    robust = client.get(f"/api/v1/decisions/{decision}/robustness", headers=scientist)
    assert anchor.status_code == robust.status_code == 200, anchor.text + robust.text
    verdict = _rebuild(settings, engine, served_book.versions[0])

    compliance = auth(Role.compliance)
    path = f"/api/v1/decisions/{decision}/dossier"
    before = _decisions(engine)
    doc = client.get(path, headers=compliance).json()
    assert _decisions(engine) == before, "the replay is never logged as a decision"

    assert doc["decision_words"] == {
        "favourable": "approved",
        "unfavourable": "denied",
        "source": "default",
    }
    words = doc["in_words"]
    assert words["decision"] == "denied" and words["class_label"] == "no"
    assert words["score"] == first["score"] == doc["decision"]["score"], "exact in the JSON"
    assert words["threshold"] == 0.5
    assert words["score_text"] == f"score {first['score']:.2f} (approved at 0.50 or above)"
    detector = doc["model"]["outlier_detector"]["threshold"]
    outlier = words["outlier"]
    assert outlier["threshold"] == detector and abs(outlier["score"] - detector) > 0.1
    assert outlier["is_outlier"] is doc["decision"]["is_outlier"] is False
    assert outlier["text"] == (
        f"outlier score {outlier['score']:.1f} (threshold {detector:.1f}): "
        "within the training distribution"
    )
    texts = {f["name"]: f for f in words["features"]}
    assert texts["checking_status"]["text"] == "Balance below 0 (A11)"
    assert texts["employment"]["text"] == "Under 1 year (2)"
    assert texts["housing"]["text"] == "Rent (1)"
    assert texts["income"]["text"] == "missing" and texts["income"]["value"] is None
    assert texts["age"]["also_protected"] is True

    assert doc["outcome"]["outcome"] == "no" and doc["outcome"]["earlier_records"] == 1
    assert doc["outcome"]["in_words"] == "repaid = no (the other class)"
    assert doc["rebuild"]["verdict"] == verdict
    assert doc["anchor"]["rule"] == anchor.json()["rule"]
    assert doc["anchor"]["coverage_rows"] == anchor.json()["coverage_rows"]
    assert doc["robustness"]["verdict"] == robust.json()["verdict"]
    assert doc["robustness"]["message"] == robust.json()["message"]
    assert doc["replay"]["reproduces_logged_decision"] is True
    assert doc["replay"]["replayed_decision"] == "denied (class no)"
    best = doc["counterfactual"]["best_in_words"]
    assert best is None or best["decision"] == "approved (class yes)"

    fairness = doc["fairness"]
    assert fairness["withheld"] is False and fairness["endpoint"] == "lending"
    by_attribute = {a["attribute"]: a for a in fairness["attributes"]}
    assert list(by_attribute) == ["sex", "foreign_worker", "age"]
    sex = by_attribute["sex"]
    assert sex["four_fifths_verdict"] in VERDICTS and sex["verdict_reasons"]
    assert {g["group"]["sex"]: g["n"] for g in sex["groups"]} == {"female": 16, "male": 14}
    assert by_attribute["foreign_worker"]["n"] == 30

    page = client.get(path, headers=compliance, params={"format": "html"}).text
    _no_python_reprs(page)
    text = _text(page)
    assert words["text"] in text and outlier["text"] in text
    assert "Balance below 0 (A11)" in text and "Under 1 year (2)" in text
    assert "income missing" in text, "a null reads 'missing'"
    assert "repaid = no (the other class)" in text
    assert f"latest rebuild {verdict} (rebuild" in text
    assert anchor.json()["rule"] in text and robust.json()["message"] in text
    assert "By sex" in text and f"Four-fifths rule over 30 decisions: {sex['four_fifths_verdict']}"
    assert f'title="exact score {first["score"]}' in page

    appeals = auth(Role.appeals)
    withheld = client.get(path, headers=appeals).json()["fairness"]
    assert withheld["withheld"] is True and withheld["attributes"] == []
    appeal_page = client.get(path, headers={**appeals, "Accept": "text/html"}).text
    _no_python_reprs(appeal_page)
    assert "Withheld: fairness verdicts name protected groups" in _text(appeal_page)
    assert "female" not in _text(appeal_page)


# The model card ---------------------------------------------------------------------------------


def test_the_card_flags_overfitting_names_the_owner_and_shows_each_attribute_alone(
    client: TestClient,
    auth: Any,
    make_key: KeyMaker,
    loan_book_repo: DataRepo,
    engine: sa.Engine,
) -> None:
    owner = {"Authorization": f"Bearer {make_key(Role.data_scientist, name='Ada, risk team')}"}
    started = client.post(
        "/api/v1/runs",
        headers={**owner, "Content-Type": "application/yaml"},
        content=loan_book_yaml(loan_book_repo),
    )
    assert started.status_code == 202, started.text
    run = wait_for_run(client, started.json()["id"], owner)
    assert run["status"] == "succeeded", run
    version = run["model_version"]
    admin = auth(Role.admin)
    promote(client, admin, "loanbook", version)
    routed = client.put(
        "/api/v1/endpoints/lending",
        headers=admin,
        json={"routes": [{"model": "loanbook", "version": version}]},
    )
    assert routed.status_code == 200, routed.text
    predictor = auth(Role.predictor)
    for i in range(36):  # 6 women: a cell below the reporting threshold of 10
        features = book_applicant(age=30, income=1200.0 + 150 * i)
        _decide(client, predictor, features, "female" if i < 6 else "male")

    path = f"/api/v1/models/loanbook/versions/{version}/card"
    compliance = client.get(path, headers=auth(Role.compliance)).json()
    detail = compliance["owner_detail"]
    assert detail["kind"] == "api_key" and detail["name"] == "Ada, risk team"
    assert compliance["owner"] == detail["recorded"], "the recorded id stays where it was"

    over = compliance["overfitting"]
    train, validation = (compliance["metrics"][s]["roc_auc"] for s in ("train", "validation"))
    assert over["train_auc"] == train and over["validation_auc"] == validation
    assert over["gap"] == pytest.approx(train - validation)
    assert over["flagged"] is (train - validation > 0.05) is True  # this book overfits: 0.21

    [together] = compliance["live_fairness"]
    assert [a["name"] for a in together["attributes"]] == ["sex", "foreign_worker", "age"]
    alone = {r["attribute"]: r for r in compliance["live_fairness_by_attribute"]}
    assert list(alone) == ["sex", "foreign_worker", "age"]
    assert {g["group"]["sex"]: g["n"] for g in alone["sex"]["groups"]} == {"female": 6, "male": 30}
    assert alone["sex"]["four_fifths_verdict"] in VERDICTS
    assert [g["group"] for g in alone["age"]["groups"]] == [{"age": "[25, 40)"}]

    features = {f["name"]: f for f in compliance["features"]}
    assert features["age"]["also_protected"] is True
    assert "Reg B" in features["age"]["protected_justification"]
    assert features["income"]["missing_value_policy"].startswith(
        f"{features['income']['missing_in_training']} missing in training; null accepted"
    )
    assert features["checking_status"]["also_protected"] is False
    assert compliance["decision_rule"]["rule"] == "approved at 0.50 or above"

    scientist = auth(Role.data_scientist)
    ds = client.get(path, headers=scientist).json()
    sex_alone = next(r for r in ds["live_fairness_by_attribute"] if r["attribute"] == "sex")
    shown = [g for g in sex_alone["groups"] if not g.get("suppressed")]
    [small] = [g for g in sex_alone["groups"] if g.get("suppressed")]
    assert [g["n"] for g in shown] == [30] and small["n"] is None
    assert small["fewer_than"] == 10 == ds["reporting_threshold"]
    assert "female" not in json.dumps(sex_alone)
    for role_card in (compliance, ds):  # names and AUCs only, for every role
        proxies = role_card["proxies"]
        assert "marital_status predicts sex with AUC 0.98" in proxies["summary"]
        assert {"attribute": "sex", "feature": "marital_status"}.items() <= next(
            p for p in proxies["top_proxies"] if p["feature"] == "marital_status"
        ).items()
        assert all(set(p) == {"attribute", "feature", "auc"} for p in proxies["top_proxies"])
        assert '"groups' not in json.dumps(proxies) and "group_auc" not in json.dumps(proxies)

    page = client.get(path, headers={**scientist, "Accept": "text/html"}).text
    _no_python_reprs(page)
    text = _text(page)
    assert "Ada, risk team (API key" in text
    assert "Flagged as overfitting" in text and f"a gap of {train - validation:.4f}" in text
    assert "lending: by sex alone" in text and "lending: by age alone" in text
    assert "fewer than 10 decisions: withheld fewer than 10" in text
    assert "marital_status predicts sex with AUC 0.98" in text
    assert "age (also a protected attribute)" in text and "Reg B" in text
    assert "null accepted at predict; filled with the training median" in text
    assert "approved at 0.50 or above; the score is the model's probability that repaid = yes" in (
        text
    )
    assert "never model inputs" not in text, "age is one"

    with Session(engine) as session:
        assert "no user was recorded" in card_module.owner_detail(session, "cli")["text"]
        assert card_module.owner_detail(session, "nobody")["kind"] == "unknown"


# The command line -------------------------------------------------------------------------------


def test_the_command_line_prints_a_decision_and_its_explanation_in_words(
    client: TestClient,
    auth: Any,
    served_book: Served,
    env_settings: Settings,
    engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decided = _decide(
        client, auth(Role.predictor), book_applicant(income=None, employment=2), "male"
    )
    assert decided["label"] == "no"
    result = CliRunner().invoke(
        cli, ["explain", "--decision", decided["decision_id"], "--method", "counterfactual"]
    )
    assert result.exit_code == 0, result.output
    printed = result.output
    assert f"denied (class no): score {decided['score']:.2f} (approved at 0.50 or above)" in printed
    assert "(threshold " in printed and "within the training distribution" in printed
    assert re.search(r"checking_status\s+Balance below 0 \(A11\)", printed)
    assert re.search(r"employment\s+Under 1 year \(2\)", printed)
    assert re.search(r"income\s+missing", printed)
    assert "approved (class yes), score" in printed, "each counterfactual's decision in words"
    assert not re.search(r"\blabel\b", printed)
    both = CliRunner().invoke(
        cli, ["explain", "--decision", decided["decision_id"], "--endpoint", "x"]
    )
    assert both.exit_code == 2 and "--endpoint (its decisions) or --decision (one)" in both.output

    wide = Console(width=400, file=io.StringIO())
    monkeypatch.setattr(lineage_cli, "out", wide)  # one table row per line, unwrapped
    with Session(engine) as session:
        _model, version = registry.get_version(
            session=session, name="loanbook", version=served_book.versions[0]
        )
        with wide.capture() as captured:
            lineage_cli._print_summary(
                "loanbook",
                version.version,
                version.lineage,
                InputSchema.from_document(version.input_schema),
            )
    summary = " ".join(captured.get().split())
    assert "approved at 0.50 or above; the score is the model's probability that repaid = yes" in (
        summary
    )
    assert "Flagged as overfitting" in summary
    assert "marital_status predicts sex with AUC 0.98" in summary
    assert "income: " in summary and "null accepted at predict" in summary
    assert "age: Age is a factor" in summary


def test_the_pages_of_a_model_trained_elsewhere_are_words_too(
    client: TestClient, auth: Any, data_repo: DataRepo
) -> None:
    """A model registered through ``TrainingCapture`` may lack descriptions, records no imputation
    and no training/validation split: the pages say so instead of printing None."""
    served = _external(client, auth, data_repo)
    features = {k: applicant()[k] for k in ("income", "debt_to_income", "late_payments", "purpose")}
    decided = client.post(
        "/api/v1/endpoints/ext/predict",
        headers=auth(Role.predictor),
        json={"features": features, "context": {"sex": "F"}},
    )
    assert decided.status_code == 200, decided.text
    compliance = {**auth(Role.compliance), "Accept": "text/html"}
    dossier = client.get(
        f"/api/v1/decisions/{decided.json()['decision_id']}/dossier", headers=compliance
    )
    card = client.get(f"/api/v1/models/ext/versions/{served.versions[0]}/card", headers=compliance)
    assert dossier.status_code == card.status_code == 200, dossier.text + card.text
    _no_python_reprs(dossier.text)
    _no_python_reprs(card.text)
    said = "approved (class 1)" if decided.json()["label"] == 1 else "denied (class 0)"
    assert said in _text(dossier.text)
    text = _text(card.text)
    assert "Overfitting not assessed" in text and "imputation not recorded" in text
    assert "No protected attribute is a model input." in text
