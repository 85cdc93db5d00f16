"""Appeal cases (issue 21): the whole life cycle on both databases, with the chain verifying
after every step; one open case per decision; a reviewer never decides a case they opened; an
overturn leaves the automated decision as it was logged; oversight figures and the clock."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.db import session_factory
from governance.casework import schemas
from governance.compliance import retention
from serving.models import DecisionRecord
from tests.conftest import KeyMaker, Served
from tests.console.support import sign_in
from tests.governance.test_notices import DENIED, _decide, _pdf_text

DOCUMENT = b"%PDF-1.4 payslip for March, income 90,000"


def _key_id(secret: str) -> str:
    return secret.split("_")[1]


def _chain_records(client: TestClient, auth: dict[str, str]) -> int:
    report = client.get("/api/v1/audit/verify", headers=auth).json()
    assert report["ok"] is True, report
    return int(next(c for c in report["chains"] if c["chain"] == "case")["records_checked"])


def test_an_appeal_from_opening_to_an_overturn_and_closing(
    client: TestClient, served: Served, make_key: KeyMaker, engine: sa.Engine, tmp_path: Path
) -> None:
    decision = _decide(client, make_key, DENIED, subject_id="A-4001", context={"sex": "F"})
    decision_id = decision["decision_id"]
    opener_secret = make_key(Role.compliance, name="Officer")
    opener = {"Authorization": f"Bearer {opener_secret}"}
    reviewer_secret = make_key(Role.reviewer, name="Reviewer")
    reviewer = {"Authorization": f"Bearer {reviewer_secret}"}
    assigner = {"Authorization": f"Bearer {make_key(Role.compliance, name='Lead')}"}
    steps = 0

    def step() -> None:
        nonlocal steps
        steps += 1
        assert _chain_records(client, assigner) == steps, "every step is in the case chain"

    opened = client.post(
        f"/api/v1/decisions/{decision_id}/appeals",
        headers=opener,
        json={
            "statement": "My income was entered wrong: I earn 90,000 a year.",
            "overrides": {"income": 90000},
            "evidence": [
                {
                    "description": "March payslip",
                    "filename": "payslip.pdf",
                    "document_base64": base64.b64encode(DOCUMENT).decode(),
                }
            ],
        },
    )
    assert opened.status_code == 201, opened.text
    case = schemas.AppealPublic.model_validate(opened.json())
    assert case.status == "open" and case.overrides == {"income": 90000}
    assert case.evidence[0].sha256 == hashlib.sha256(DOCUMENT).hexdigest()
    assert case.evidence[0].bytes == len(DOCUMENT)
    step()
    second = client.post(
        f"/api/v1/decisions/{decision_id}/appeals", headers=opener, json={"statement": "again"}
    )
    assert second.status_code == 409 and "one case at a time" in second.text

    path = f"/api/v1/appeals/{case.case_id}"
    own = client.post(f"{path}/assign", headers=assigner, json={"reviewer": _key_id(opener_secret)})
    assert own.status_code == 422 and "opened this case" in own.text
    wrong = client.post(
        f"{path}/assign", headers=assigner, json={"reviewer": _key_id(make_key(Role.predictor))}
    )
    assert wrong.status_code == 422 and "reviewer" in wrong.text
    assigned = client.post(
        f"{path}/assign", headers=assigner, json={"reviewer": _key_id(reviewer_secret)}
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["status"] == "under_review"
    step()

    # The officer who opened the case tries to decide it: refused, whatever their role.
    rationale = "The payslip shows an income of 90,000; with it the applicant is approved."
    mine = client.post(
        f"{path}/decision", headers=opener, json={"outcome": "upheld", "rationale": rationale}
    )
    assert mine.status_code == 403 and "opened a case cannot decide" in mine.text
    other = client.post(
        f"{path}/decision", headers=assigner, json={"outcome": "upheld", "rationale": rationale}
    )
    assert other.status_code == 403 and "assigned reviewer" in other.text

    early = client.get(f"{path}/letter", headers=opener)
    assert early.status_code == 409 and "no decision to write about" in early.text
    seen = client.get(f"{path}/review", headers=reviewer)
    assert seen.status_code == 200, seen.text
    review = schemas.AppealReview.model_validate(seen.json())
    assert review.before.favourable is False and review.after.favourable is True
    assert review.label_changed is True and review.after.score > review.before.score  # type: ignore[operator]
    assert seen.json()["overrides"]["income"] == {"from": DENIED["income"], "to": 90000}
    assert review.before.shap and review.after.shap
    assert review.before.reasons and not review.after.reasons, "approved: no adverse reasons"

    short = client.post(
        f"{path}/decision", headers=reviewer, json={"outcome": "overturned", "rationale": "ok"}
    )
    assert short.status_code == 422 and "rationale" in short.text
    decided = client.post(
        f"{path}/decision", headers=reviewer, json={"outcome": "overturned", "rationale": rationale}
    )
    assert decided.status_code == 200, decided.text
    body = schemas.AppealPublic.model_validate(decided.json())
    assert body.status == "decided" and body.outcome == "overturned"
    assert body.human_label == "1" and body.review is not None
    assert body.review.after.label in ("1", 1)
    step()

    # The fairness report counts the automated decision as logged, and says a person overturned it.
    report = client.get(
        "/api/v1/fairness", params={"endpoint": "credit", "attribute": "sex"}, headers=assigner
    ).json()
    assert report["human_overturns"]["decisions"] == 1
    assert report["human_overturns"]["by_group"] == [{"group": {"sex": "F"}, "overturned": 1}]
    [female] = [g for g in report["groups"] if g["group"] == {"sex": "F"}]
    assert female["n"] == 1 and female["favourable"] == 0, "counted as the automated denial"
    final = report["human_overturns"]["final_decisions"]
    [female_final] = [g for g in final["groups"] if g["group"] == {"sex": "F"}]
    assert female_final["n"] == 1 and female_final["favourable"] == 1, "the person's approval"
    officer = TestClient(client.app)
    sign_in(officer, make_key(Role.compliance))
    page = officer.get("/console/fairness", params={"endpoint": "credit", "attributes": "sex"})
    assert page.status_code == 200 and 'id="after-appeals"' in page.text
    assert "A person overturned 1 of them on appeal" in page.text

    # The automated decision is as it was logged.
    with engine.connect() as connection:
        label = connection.execute(
            sa.select(DecisionRecord.__table__.c.label).where(
                DecisionRecord.__table__.c.decision_id == decision_id
            )
        ).scalar_one()
    assert label == str(decision["label"])

    # The applicant's letter: the new decision, the reviewer's reasons, the corrections; no score
    # (not configured) and nothing protected.
    letter = client.get(f"{path}/letter", headers=opener)
    assert letter.status_code == 200 and letter.headers["x-govern-template"].startswith(
        "letter.html v1 sha256:"
    )
    text = " ".join(letter.text.split())
    assert "we have changed our decision: your application is now <strong>approved</strong>" in text
    assert rationale in text and "income: 90,000 (our records had 12,000)" in text
    assert "score" not in text.lower()
    pdf = client.get(f"{path}/letter", params={"format": "pdf"}, headers=opener)
    assert pdf.headers["content-type"] == "application/pdf"
    printed = " ".join(_pdf_text(pdf.content, tmp_path).split())
    assert "now approved" in printed and "A-4001" in printed
    step()  # the letter is made once, and its hashes are in the chain
    assert pdf.headers["x-govern-document-sha256"] == hashlib.sha256(pdf.content).hexdigest()
    client.app.state.clock = lambda: datetime.now(UTC) + timedelta(days=3)
    later = client.get(f"{path}/letter", params={"format": "pdf"}, headers=opener)
    assert later.content == pdf.content, "asked again, days later: the same letter"
    assert client.get(f"{path}/letter", headers=opener).text == letter.text
    made = client.get(path, headers=opener).json()["letter"]
    assert made["pdf_sha256"] == hashlib.sha256(pdf.content).hexdigest()
    assert made["html_sha256"] == hashlib.sha256(letter.content).hexdigest()
    client.app.state.clock = lambda: datetime.now(UTC)

    closed = client.post(f"{path}/close", headers=reviewer)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    step()
    again = client.post(
        f"/api/v1/decisions/{decision_id}/appeals",
        headers=opener,
        json={"statement": "A new fact since the last case."},
    )
    assert again.status_code == 201, "closed: another case may be opened"
    step()

    oversight = client.get("/api/v1/appeals/oversight", headers=assigner)
    assert oversight.status_code == 200, oversight.text
    [version] = schemas.Oversight.model_validate(oversight.json()).versions
    assert (version.opened, version.decided, version.overturned) == (2, 1, 1)
    assert version.overturn_rate == 1.0 and version.overdue == 0
    assert version.overturn_rate_ci95 is not None and version.overturn_rate_ci95[0] < 0.5
    assert [f.feature for f in version.most_corrected_in_overturns] == ["income"]
    assert version.by_group is None
    grouped = client.get(
        "/api/v1/appeals/oversight", params={"attribute": "sex"}, headers=assigner
    ).json()
    [by_sex] = schemas.Oversight.model_validate(grouped).versions
    assert by_sex.by_group is not None
    [group] = by_sex.by_group
    assert (group.group, group.decided, group.overturned) == ("F", 1, 1)
    assert group.below_minimum_size is True, "one case says little: marked, with its interval"
    client.app.state.clock = lambda: datetime.now(UTC) + timedelta(days=31)
    late = schemas.Oversight.model_validate(
        client.get("/api/v1/appeals/oversight", headers=assigner).json()
    )
    assert late.versions[0].overdue == 1
    overdue = client.get(f"/api/v1/appeals/{again.json()['case_id']}", headers=assigner)
    assert overdue.json()["overdue"] is True


def test_appeals_keys_see_their_own_cases_and_bad_input_is_named(
    client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    first = {"Authorization": f"Bearer {make_key(Role.appeals, name='Handler one')}"}
    second = {"Authorization": f"Bearer {make_key(Role.appeals, name='Handler two')}"}
    decision_id = _decide(client, make_key, DENIED)["decision_id"]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"statement": "x", "overrides": {"colour": "red"}}, "overrides.colour"),
        ({"statement": "x", "overrides": {"income": "lots"}}, "overrides.income"),
        (
            {"statement": "x", "evidence": [{"description": "d", "document_base64": "@@@"}]},
            "evidence.0.document_base64",
        ),
        (
            {
                "statement": "x",
                "evidence": [
                    {
                        "description": "too big",
                        "document_base64": base64.b64encode(b"0" * 600_000).decode(),
                    }
                ],
            },
            "evidence.0.document_base64",
        ),
        ({"statement": ""}, "statement"),
    ]
    for body, field in bad:
        answer = client.post(f"/api/v1/decisions/{decision_id}/appeals", headers=first, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.text, (field, answer.text)
    opened = client.post(
        f"/api/v1/decisions/{decision_id}/appeals", headers=first, json={"statement": "Please."}
    )
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["case_id"]
    assert [c["case_id"] for c in client.get("/api/v1/appeals", headers=first).json()["data"]] == [
        case_id
    ]
    assert client.get("/api/v1/appeals", headers=second).json()["data"] == []
    assert client.get(f"/api/v1/appeals/{case_id}", headers=second).status_code == 404
    assert client.get(f"/api/v1/appeals/{case_id}/review", headers=first).status_code == 403
    predictor = {"Authorization": f"Bearer {make_key(Role.predictor)}"}
    assert client.get("/api/v1/appeals", headers=predictor).status_code == 403
    unknown = client.post(
        "/api/v1/decisions/00000000-0000-4000-8000-000000000000/appeals",
        headers=first,
        json={"statement": "?"},
    )
    assert unknown.status_code == 404


def test_a_retention_purge_removes_what_the_applicant_said_and_keeps_the_hashes(
    client: TestClient, served: Served, make_key: KeyMaker, engine: sa.Engine
) -> None:
    compliance = {"Authorization": f"Bearer {make_key(Role.compliance)}"}
    decision_id = _decide(client, make_key, DENIED)["decision_id"]
    opened = client.post(
        f"/api/v1/decisions/{decision_id}/appeals",
        headers=compliance,
        json={
            "statement": "My income is higher now.",
            "overrides": {"income": 90000},
            "evidence": [
                {
                    "description": "payslip",
                    "filename": "march.pdf",
                    "document_base64": base64.b64encode(DOCUMENT).decode(),
                }
            ],
        },
    ).json()
    path = f"/api/v1/appeals/{opened['case_id']}"
    reviewer_secret = make_key(Role.reviewer)
    reviewer = {"Authorization": f"Bearer {reviewer_secret}"}
    assigned = client.post(
        f"{path}/assign", headers=compliance, json={"reviewer": _key_id(reviewer_secret)}
    )
    assert assigned.status_code == 200, assigned.text
    rationale = "A higher income now is a new application, not an error in this one."
    decided = client.post(
        f"{path}/decision", headers=reviewer, json={"outcome": "upheld", "rationale": rationale}
    )
    assert decided.status_code == 200, decided.text
    letter = client.get(path + "/letter", headers=compliance)
    assert letter.status_code == 200 and rationale in letter.text
    summary = retention.apply(
        session_factory(engine), days=30, now=datetime.now(UTC) + timedelta(days=60)
    )
    assert summary["purged"] >= 1
    kept = client.get(path, headers=compliance).json()
    assert kept["status"] == "decided" and kept["statement"] == "" and kept["overrides"] == {}
    assert kept["rationale"] is None and kept["review"] is None
    assert kept["letter"]["html_sha256"] == hashlib.sha256(letter.content).hexdigest()
    gone = client.get(path + "/letter", headers=compliance)
    assert gone.status_code == 409 and "purged" in gone.text
    assert kept["evidence"] == [
        {
            "description": "purged",
            "filename": None,
            "sha256": hashlib.sha256(DOCUMENT).hexdigest(),
            "bytes": len(DOCUMENT),
        }
    ]
    assert _chain_records(client, compliance) == 4, "opened, assigned, decided, the letter"
