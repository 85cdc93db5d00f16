"""The EU AI Act's technical documentation (Annex IV), on both databases: each section says what
govern evidences and what is missing, from the version's own records; a model trained elsewhere
says that govern did not run its training; the records it names answer."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from core.auth.models import Role
from governance.compliance.schemas import TechnicalDocumentation
from tests.conftest import Served
from tests.support.factories import applicant


def test_the_documentation_says_what_is_evidenced_and_what_is_missing(
    client: TestClient, served: Served, auth: Any
) -> None:
    compliance = auth(Role.compliance)
    path = f"/api/v1/models/credit/versions/{served.versions[0]}/technical-documentation"
    before = TechnicalDocumentation.model_validate(client.get(path, headers=compliance).json())
    sections = {s.key: s for s in before.sections}
    assert list(sections) == [
        "intended_purpose",
        "data",
        "design",
        "validation",
        "human_oversight",
        "logging",
        "robustness",
        "changes",
    ]
    assert sections["logging"].status == "missing", "no decision made yet"
    for i in range(5):
        made = client.post(
            "/api/v1/endpoints/credit/predict",
            headers=auth(Role.predictor),
            json={"features": applicant(income=20000.0 + 9000 * i), "context": {"sex": "F"}},
        )
        assert made.status_code == 200, made.text
    document = TechnicalDocumentation.model_validate(client.get(path, headers=compliance).json())
    sections = {s.key: s for s in document.sections}
    assert sections["logging"].status == "evidenced"
    assert sections["logging"].evidence["decisions_logged"] == 5
    assert sections["data"].status == "evidenced"
    data = sections["data"].evidence["dataset"]
    assert isinstance(data, dict) and data["commit"] and data["sha256"]
    assert sections["design"].status == "evidenced"
    estimator = sections["design"].evidence["estimator"]
    assert isinstance(estimator, dict) and estimator["class"].startswith("sklearn.")
    validation = sections["validation"]
    assert validation.status == "partly" and any("never rebuilt" in m for m in validation.missing)
    assert sections["human_oversight"].status == "partly"
    robustness = sections["robustness"]
    assert robustness.status == "partly"
    assert any("make reliability" in m for m in robustness.missing)
    assert sections["changes"].status == "evidenced"
    assert document.summary["missing"] == []
    assert set(document.summary["partly"]) >= {"validation", "human_oversight", "robustness"}
    for record in (sections["data"].records + sections["design"].records)[:3]:
        assert client.get(record, headers=compliance).status_code == 200, record

    page = client.get(path, headers=compliance, params={"format": "html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="logging"' in page.text and "never rebuilt" in page.text
    assert client.get(path, headers=auth(Role.appeals)).status_code == 403

    # The console: linked from the model card, the same sections.
    from tests.console.support import sign_in

    officer = TestClient(client.app)
    sign_in(officer, compliance["Authorization"].split(" ", 1)[1])
    card = officer.get(f"/console/models/credit/versions/{served.versions[0]}")
    assert 'id="annex-iv"' in card.text
    shown = officer.get(
        f"/console/models/credit/versions/{served.versions[0]}/technical-documentation"
    )
    assert shown.status_code == 200
    assert shown.text.count("<section") == len(document.sections)
    assert "never rebuilt" in shown.text and 'id="logging"' in shown.text
