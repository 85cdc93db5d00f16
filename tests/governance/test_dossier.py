"""The decision dossier: one document, JSON and HTML, with the figures the JSON has."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from fastapi.testclient import TestClient

from core.auth.models import Role
from tests.conftest import Served
from tests.support.factories import applicant


def test_the_dossier_holds_everything_and_the_html_shows_the_same_figures(
    client: TestClient, auth: Any, served: Served
) -> None:
    decision = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={
            "subject_id": "applicant-7",
            "features": applicant(income=31_000.0, late_payments=4, debt_to_income=0.48),
            "context": {"sex": "F", "age": 44},
        },
    ).json()
    path = f"/api/v1/decisions/{decision['decision_id']}/dossier"
    compliance, appeals = auth(Role.compliance), auth(Role.appeals)
    first = client.get(path, headers=compliance)
    assert first.status_code == 200, first.text
    doc = first.json()
    assert doc["decision"]["decision_id"] == decision["decision_id"]
    assert doc["decision"]["score"] == decision["score"]
    assert doc["decision"]["context"] == {"sex": "F", "age": 44}
    assert doc["model"]["artifact_sha256"] == decision["model"]["sha256"]
    assert doc["model"]["dataset"]["sha256"] and doc["model"]["seeds"]
    assert doc["replay"]["reproduces_logged_decision"] is True
    assert doc["chain"]["verified"] is True and doc["chain"]["seq"] == doc["decision"]["seq"]
    assert set(doc["shap"]["values"]) == set(applicant())
    if str(decision["label"]) == "0":
        assert 1 <= len(doc["reasons"]["reasons"]) <= 4
        assert doc["counterfactual"]["best"]["changes"]
    again = client.get(path, headers=compliance).json()
    assert again == doc, "the same dossier every time"

    redacted = client.get(path, headers=appeals).json()
    assert redacted["decision"]["context"] == {} and redacted["redacted"] == ["age", "sex"]
    page = client.get(path, headers={**appeals, "Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert decision["decision_id"] in text and str(decision["score"]) in text
    assert doc["chain"]["record_hash"] in text and "verifies" in text
    assert "<svg" in text and len(re.findall(r"<rect ", text)) == len(doc["shap"]["values"])
    for name, value in doc["shap"]["values"].items():
        assert f"{value:.4f}" in text and name in text
    for reason in doc["reasons"]["reasons"]:
        assert reason["code"] in text
    assert "(context)" not in text, "protected attributes stay out of the appeals page"
    html = client.get(path, headers=compliance, params={"format": "html"}).text
    assert "(context)" in html and ">F<" in html

    # In words (issue 17): the demo's classes are 0 and 1, and a page never says "label 0".
    said = "approved" if str(decision["label"]) == "1" else "denied"
    assert doc["in_words"]["decision"] == said
    assert doc["in_words"]["class_label"] == decision["label"] == doc["decision"]["label"]
    for page_html in (text, html):
        plain = " ".join(
            unescape(re.sub(r"<style>.*?</style>|<[^>]+>", " ", page_html, flags=re.S)).split()
        )
        assert f"{said} (class {decision['label']})" in plain
        assert "approved at 0.50 or above" in plain
        assert not re.search(r"\b(True|False|None)\b", plain), "no Python repr"
        assert "{'" not in plain and not re.search(r"\blabel \d", plain)
        seeds = ", ".join(f"{k} {v}" for k, v in doc["model"]["seeds"].items())
        assert f"seeds {seeds}" in plain, "a mapping reads as a list"
        assert "its content matches its hash: yes" in plain

    assert client.get(path, headers=auth(Role.predictor)).status_code == 403
    unknown = client.get("/api/v1/decisions/not-a-uuid/dossier", headers=compliance)
    assert unknown.status_code == 422
