"""The web console over HTTP: sign-in and its session, CSRF, roles, timeouts, revocation, the
decision search and the decision page with its replay. The browser tests (``test_browser``)
run the same pages in Chromium."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import select

from core.auth.models import ConsoleSession, Role
from core.config import Settings
from core.db import session_factory, transaction
from tests.conftest import KeyMaker, Served
from tests.console.support import CONSOLE, csrf, form_value, sign_in
from tests.support.factories import applicant

PREDICT = "/api/v1/endpoints/credit/predict"


def _predict(client: TestClient, served: Served, make_key: KeyMaker, **body: object) -> str:
    headers = {"Authorization": f"Bearer {make_key(Role.predictor)}"}
    response = client.post(PREDICT, headers=headers, json={"features": applicant(), **body})
    assert response.status_code == 200, response.text
    return str(response.json()["decision_id"])


def _age_sessions(engine: sa.Engine, **moves: timedelta) -> None:
    """Move every session's times back, as if that much time had passed."""
    with transaction(session_factory(engine)) as session:
        for row in session.exec(select(ConsoleSession)).all():
            for column, delta in moves.items():
                setattr(row, column, getattr(row, column) - delta)
            session.add(row)


def test_signing_in_gives_a_strict_http_only_cookie_and_the_roles_pages(
    client: TestClient, make_key: KeyMaker
) -> None:
    form = client.get(f"{CONSOLE}/sign-in")
    assert form.status_code == 200
    assert "default-src 'self'" in form.headers["content-security-policy"]
    assert '<label for="api_key">' in form.text
    response = client.post(
        f"{CONSOLE}/sign-in",
        data={
            "api_key": make_key(Role.compliance, name="Ada"),
            "form_token": form_value(form.text, "form_token"),
            "next": f"{CONSOLE}/decisions",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"{CONSOLE}/decisions"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("govern_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie, "plain http in the test: Secure only over HTTPS"
    home = client.get(f"{CONSOLE}/")
    assert home.status_code == 200
    assert "Ada" in home.text and 'href="/console/decisions"' in home.text


def test_a_wrong_key_and_a_form_without_its_token_are_refused_in_words(
    client: TestClient, make_key: KeyMaker
) -> None:
    form = client.get(f"{CONSOLE}/sign-in")
    token = form_value(form.text, "form_token")
    wrong = client.post(
        f"{CONSOLE}/sign-in", data={"api_key": "gov_nope_nope", "form_token": token}
    )
    assert wrong.status_code == 401
    assert "That key was not accepted" in wrong.text
    assert "govern_session" not in client.cookies
    forged = TestClient(client.app).post(  # no sign-in cookie: a form posted from elsewhere
        f"{CONSOLE}/sign-in",
        data={"api_key": make_key(Role.admin), "form_token": token},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert "expired" in forged.text and "govern_session" not in forged.cookies


def test_a_page_without_a_session_sends_the_person_to_sign_in_and_back(
    client: TestClient, make_key: KeyMaker
) -> None:
    response = client.get(f"{CONSOLE}/decisions?subject_id=s-1", follow_redirects=False)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(f"{CONSOLE}/sign-in?why=sign_in_first")
    assert "next=%2Fconsole%2Fdecisions%3Fsubject_id%3Ds-1" in location
    page = client.get(location)
    assert "Sign in to continue." in page.text
    assert form_value(page.text, "next") == f"{CONSOLE}/decisions?subject_id=s-1"
    assert client.post(f"{CONSOLE}/sign-out", follow_redirects=False).status_code == 401


def test_each_role_sees_only_its_pages_and_the_gate_refuses_the_others(
    app: object, make_key: KeyMaker
) -> None:
    seen = {}
    for role in (Role.compliance, Role.appeals, Role.predictor, Role.admin):
        with TestClient(app) as client:
            sign_in(client, make_key(role))
            home = client.get(f"{CONSOLE}/")
            search = client.get(f"{CONSOLE}/decisions")
            seen[role] = ('href="/console/decisions"' in home.text, search.status_code)
            if search.status_code == 403:
                assert "Not allowed" in search.text and "appeals" not in search.text[:0]
                assert search.headers["content-type"].startswith("text/html")
    assert seen == {
        Role.compliance: (True, 200),
        Role.appeals: (False, 403),
        Role.predictor: (False, 403),
        Role.admin: (True, 200),
    }


def test_a_state_changing_form_without_its_csrf_token_is_refused(
    client: TestClient, make_key: KeyMaker
) -> None:
    sign_in(client, make_key(Role.compliance))
    forged = client.post(f"{CONSOLE}/sign-out", data={}, follow_redirects=False)
    assert forged.status_code == 403
    assert "was not sent from the console" in forged.text
    wrong = client.post(
        f"{CONSOLE}/sign-out", data={"csrf_token": "0" * 64}, follow_redirects=False
    )
    assert wrong.status_code == 403
    assert client.get(f"{CONSOLE}/").status_code == 200, "still signed in"
    out = client.post(
        f"{CONSOLE}/sign-out", data={"csrf_token": csrf(client)}, follow_redirects=False
    )
    assert out.status_code == 303
    assert out.headers["location"].endswith("why=signed_out")


def test_a_signed_out_cookie_is_refused_even_if_replayed(
    client: TestClient, make_key: KeyMaker
) -> None:
    sign_in(client, make_key(Role.compliance))
    stolen = client.cookies["govern_session"]
    client.post(f"{CONSOLE}/sign-out", data={"csrf_token": csrf(client)})
    replayed = TestClient(client.app, cookies={"govern_session": stolen})
    response = replayed.get(f"{CONSOLE}/", follow_redirects=False)
    assert response.status_code == 303
    assert "why=signed_out" in response.headers["location"]


def test_revoking_the_key_ends_its_sessions_at_once(
    client: TestClient, make_key: KeyMaker, auth: object
) -> None:
    key = make_key(Role.compliance)
    sign_in(client, key)
    assert client.get(f"{CONSOLE}/decisions").status_code == 200
    key_id = key.split("_")[1]
    admin = auth(Role.admin)  # type: ignore[operator]
    revoked = client.delete(f"/api/v1/keys/{key_id}", headers=admin)
    assert revoked.status_code in (200, 204), revoked.text
    response = client.get(f"{CONSOLE}/decisions", follow_redirects=False)
    assert response.status_code == 303
    assert "why=key_gone" in response.headers["location"]


def test_an_idle_session_and_an_old_one_end(
    client: TestClient, make_key: KeyMaker, engine: sa.Engine, settings: Settings
) -> None:
    sign_in(client, make_key(Role.compliance))
    _age_sessions(engine, last_seen_at=timedelta(seconds=settings.console_idle_timeout_s - 60))
    assert client.get(f"{CONSOLE}/").status_code == 200, "a minute short of idle: still on"
    _age_sessions(engine, last_seen_at=timedelta(seconds=settings.console_idle_timeout_s))
    idle = client.get(f"{CONSOLE}/", follow_redirects=False)
    assert idle.status_code == 303 and "why=idle" in idle.headers["location"]

    sign_in(client, make_key(Role.compliance))
    _age_sessions(
        engine,
        expires_at=timedelta(seconds=settings.console_session_max_s),
        created_at=timedelta(seconds=settings.console_session_max_s),
    )
    old = client.get(f"{CONSOLE}/", follow_redirects=False)
    assert old.status_code == 303 and "why=expired" in old.headers["location"]


def test_decision_search_finds_by_subject_shows_markup_as_text_and_is_in_the_trail(
    client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    hostile = "<script>alert(1)</script>"
    decision_id = _predict(client, served, make_key, subject_id=hostile)
    _predict(client, served, make_key, subject_id="someone-else")
    officer = make_key(Role.compliance)
    sign_in(client, officer)
    page = client.get(f"{CONSOLE}/decisions", params={"subject_id": hostile})
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert hostile not in page.text
    assert decision_id in page.text and "someone-else" not in page.text
    trail = client.get(
        "/api/v1/audit/access-log",
        params={"action": "decisions.query"},
        headers={"Authorization": f"Bearer {officer}"},
    )
    assert trail.status_code == 200
    assert trail.json()["data"][0]["params"]["subject_id"] == hostile

    empty = client.get(f"{CONSOLE}/decisions", params={"subject_id": "nobody"})
    assert "No decision matches this search" in empty.text


def test_search_problems_and_errors_are_pages_in_words(
    client: TestClient, make_key: KeyMaker
) -> None:
    sign_in(client, make_key(Role.compliance))
    bad = client.get(
        f"{CONSOLE}/decisions",
        params={"version": "two", "since": "2026-13-01", "outlier": "maybe"},
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("text/html")
    for text in ("version", "a whole number", "since", "YYYY-MM-DD", "outlier"):
        assert text in bad.text
    missing = client.get(f"{CONSOLE}/decisions/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "Not found" in missing.text and '"error"' not in missing.text


def test_export_streams_the_current_search_as_csv(
    client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    first = _predict(client, served, make_key, subject_id="exported")
    _predict(client, served, make_key, subject_id="not-exported")
    sign_in(client, make_key(Role.compliance))
    response = client.get(
        f"{CONSOLE}/decisions/export", params={"subject_id": "exported", "format": "csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.strip().splitlines()
    assert len(lines) == 2 and first in lines[1]


def test_the_decision_page_shows_the_dossier_and_a_replay_changes_the_score(
    client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    decision_id = _predict(client, served, make_key, subject_id="appellant")
    sign_in(client, make_key(Role.appeals))
    # The first view comes at once, without explanations, and loads them on its own.
    first = client.get(f"{CONSOLE}/decisions/{decision_id}")
    assert first.status_code == 200, first.text
    assert 'id="explanations-pending"' in first.text and 'id="reasons"' not in first.text
    assert f'hx-get="/console/decisions/{decision_id}/explanations"' in first.text
    assert 'id="replay-form"' in first.text and 'id="chain"' in first.text
    explained = client.get(f"{CONSOLE}/decisions/{decision_id}/explanations")
    assert explained.status_code == 200
    assert 'id="reasons"' in explained.text and 'id="shap-chart"' in explained.text
    assert "<html" not in explained.text, "a piece of the page, for htmx"
    # Stored now: later views show them in the page itself.
    page = client.get(f"{CONSOLE}/decisions/{decision_id}")
    assert page.status_code == 200, page.text
    for part in ('id="reasons"', 'id="shap-chart"', 'id="replay-form"', 'id="chain"'):
        assert part in page.text
    assert 'id="explanations-pending"' not in page.text
    assert "verifies" in page.text
    other = _predict(client, served, make_key, subject_id="without-javascript")
    inline = client.get(f"{CONSOLE}/decisions/{other}", params={"explain": "true"})
    assert 'id="reasons"' in inline.text and 'id="explanations-pending"' not in inline.text
    token = form_value(page.text, "csrf_token")
    replay = client.post(
        f"{CONSOLE}/decisions/{decision_id}/replay",
        data={
            "csrf_token": token,
            "feature.income": "250000",
            "original.income": "52000.0",
            "feature.purpose": "car",
            "original.purpose": "car",
        },
    )
    assert replay.status_code == 200, replay.text
    assert 'id="replayed-score"' in replay.text
    assert "Changed: income from 52000" in replay.text
    refused = client.post(
        f"{CONSOLE}/decisions/{decision_id}/replay",
        data={"csrf_token": token, "feature.income": "lots", "original.income": "52000.0"},
    )
    assert refused.status_code == 200
    assert 'id="replay-problems"' in refused.text and "income" in refused.text
    no_token = client.post(
        f"{CONSOLE}/decisions/{decision_id}/replay", data={"feature.income": "1"}
    )
    assert no_token.status_code == 403


def _biased(client: TestClient, make_key: KeyMaker, n: int = 40) -> None:
    """``n`` applicants of each sex: every woman denied, every man approved."""
    headers = {"Authorization": f"Bearer {make_key(Role.predictor)}"}
    denied = applicant(income=12000.0, debt_to_income=0.45, late_payments=3)
    approved = applicant(income=250000.0)
    for i in range(n):
        for sex, features in (("F", denied), ("M", approved)):
            body = {"subject_id": f"{sex}-{i}", "features": features, "context": {"sex": sex}}
            response = client.post(PREDICT, headers=headers, json=body)
            assert response.status_code == 200, response.text


def test_the_fairness_page_marks_a_violated_four_fifths_rule_and_not_assessable_as_such(
    client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    sign_in(client, make_key(Role.compliance))
    empty = client.get(f"{CONSOLE}/fairness")
    assert empty.status_code == 200
    assert "Choose an endpoint and one or more protected attributes" in empty.text
    assert "sex" in empty.text, "the form names the protected attributes the models record"

    _biased(client, make_key, n=4)  # 4 per group: below the minimum group size of 30
    small = client.get(f"{CONSOLE}/fairness", params={"endpoint": "credit", "attributes": "sex"})
    assert small.status_code == 200, small.text
    assert 'id="four-fifths" class="muted">not assessable' in small.text
    assert "Not assessable is not a pass" in small.text

    _biased(client, make_key, n=40)
    page = client.get(
        f"{CONSOLE}/fairness", params={"endpoint": "credit", "attributes": "sex", "window": ""}
    )
    assert 'id="four-fifths" class="bad">violated' in page.text
    assert '<tr class="violated">' in page.text and 'id="trend"' not in page.text
    assert '"violated": true' in page.text, "the chart data marks the violated group"

    bad = client.get(
        f"{CONSOLE}/fairness",
        params={"endpoint": "nope", "attributes": "a,b,c,d", "window": "year"},
    )
    assert bad.status_code == 422
    for text in ("no such endpoint", "at most 3 names", "day, week, month or none"):
        assert text in bad.text
    refused = TestClient(client.app)
    sign_in(refused, make_key(Role.data_scientist))
    assert refused.get(f"{CONSOLE}/fairness").status_code == 403, "protected attributes"


def test_the_audit_page_verifies_the_chains_and_shows_who_looked(
    client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    decision_id = _predict(client, served, make_key, subject_id="audited")
    reader = TestClient(client.app)
    sign_in(reader, make_key(Role.appeals, name="Reader"))
    assert reader.get(f"{CONSOLE}/decisions/{decision_id}").status_code == 200
    sign_in(client, make_key(Role.compliance))
    client.get(f"{CONSOLE}/decisions", params={"subject_id": "audited"})
    page = client.get(f"{CONSOLE}/audit")
    assert page.status_code == 200
    assert 'id="verify-result"' not in page.text, "verification runs only when asked"
    assert "No signed checkpoints yet" in page.text
    trail = page.text.split('id="trail"')[1]
    assert f"<code>{decision_id}</code>" in trail and "dossier.read" in trail
    assert "decisions.query" in trail
    verified = client.get(f"{CONSOLE}/audit", params={"verify": "true"})
    assert 'id="verify-result"' in verified.text
    assert "Every chain verifies." in verified.text
    only = client.get(f"{CONSOLE}/audit", params={"action": "decisions.query"})
    trail = only.text.split('id="trail"')[1]
    assert "decisions.query" in trail and "dossier.read" not in trail
    assert reader.get(f"{CONSOLE}/audit").status_code == 403


def test_the_models_page_shows_each_version_with_its_stage_history(
    client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    sign_in(client, make_key(Role.data_scientist))
    page = client.get(f"{CONSOLE}/models")
    assert page.status_code == 200, page.text
    assert f"<strong>credit</strong> v{served.versions[0]}" in page.text
    assert f"<strong>credit</strong> v{served.versions[1]}" in page.text
    assert "→ <strong>production</strong>" in page.text, "the promotion is on the timeline"
    assert "served on credit (live)" in page.text
    in_use = client.get(f"{CONSOLE}/models", params={"status": "in_use"})
    assert f"v{served.versions[1]}</td>" not in in_use.text
    refused = TestClient(client.app)
    sign_in(refused, make_key(Role.appeals))
    assert refused.get(f"{CONSOLE}/models").status_code == 403


def test_the_drift_page_says_insufficient_data_for_a_small_window_and_compares_a_large_one(
    client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    for _ in range(5):
        _predict(client, served, make_key)
    sign_in(client, make_key(Role.data_scientist))
    small = client.get(f"{CONSOLE}/drift", params={"endpoint": "credit"})
    assert small.status_code == 200, small.text
    assert 'id="drift-verdict" class="muted">insufficient data' in small.text
    assert "Insufficient data is not a pass" in small.text
    assert "No probing alert on credit" in small.text
    _biased(client, make_key, n=30)
    large = client.get(f"{CONSOLE}/drift", params={"endpoint": "credit"})
    assert 'id="drift-verdict" class="bad">drifted' in large.text, "two extreme applicants"
    assert "income" in large.text and '"psi":' in large.text
    # The distributions: a chart per feature with its figures, training against these decisions.
    assert large.text.count('class="dist-chart"') == large.text.count("<figure class=") >= 8
    assert "Figures for income" in large.text and "<td>missing</td>" in large.text
    assert '"distributions":' in large.text
    bad = client.get(f"{CONSOLE}/drift", params={"endpoint": "credit", "since": "yesterday"})
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text
    refused = TestClient(client.app)
    sign_in(refused, make_key(Role.appeals))
    assert refused.get(f"{CONSOLE}/drift").status_code == 403


def test_a_rebuild_started_from_the_models_page_shows_its_progress_until_its_verdict(
    client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    sign_in(client, make_key(Role.data_scientist))
    models = client.get(f"{CONSOLE}/models")
    version = served.versions[0]
    action = f"{CONSOLE}/models/credit/versions/{version}/rebuild"
    assert f'hx-post="{action}"' in models.text
    token = form_value(models.text, "csrf_token")
    started = client.post(action, data={"csrf_token": token})
    assert started.status_code == 200, started.text
    found = re.search(r'id="rebuild-(\d+)"', started.text)
    assert found and 'hx-trigger="load delay:1s"' in started.text, "it polls while it runs"
    rebuild_id = found.group(1)
    again = client.post(action, data={"csrf_token": token})
    assert f'id="rebuild-{rebuild_id}"' in again.text, "one active rebuild per version"
    deadline = time.monotonic() + 180
    while True:
        progress = client.get(f"{CONSOLE}/rebuilds/{rebuild_id}")
        assert progress.status_code == 200, progress.text
        if "hx-trigger" not in progress.text:
            break
        assert time.monotonic() < deadline, progress.text
        time.sleep(0.5)
    assert 'class="rebuild-verdict ok">identical' in progress.text
    viewer = TestClient(client.app)
    sign_in(viewer, make_key(Role.appeals))
    assert viewer.post(action, data={"csrf_token": csrf(viewer)}).status_code == 403
    assert 'hx-post="' not in viewer.get(f"{CONSOLE}/").text


def test_the_model_card_page_shows_the_gate_and_the_metrics_by_group(
    client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    sign_in(client, make_key(Role.compliance))
    version = served.versions[0]
    models = client.get(f"{CONSOLE}/models")
    link = f'href="/console/models/credit/versions/{version}"'
    assert link in models.text
    card = client.get(f"{CONSOLE}/models/credit/versions/{version}")
    assert card.status_code == 200, card.text
    assert 'id="gate" class="ok"' in card.text and "passed" in card.text
    assert "By sex" in card.text and 'class="sortable card-groups"' in card.text
    assert 'id="overfitting"' in card.text
    missing = client.get(f"{CONSOLE}/models/credit/versions/99")
    assert missing.status_code == 404 and "Not found" in missing.text


def test_notice_and_appeal_forms_need_their_csrf_token_and_say_what_is_wrong(
    client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    decision_id = _predict(
        client, served, make_key, features=applicant(income=12000.0, late_payments=3)
    )
    sign_in(client, make_key(Role.appeals))
    page = client.get(f"{CONSOLE}/decisions/{decision_id}")
    assert 'id="make-notice"' in page.text and 'id="open-appeal"' in page.text
    token = form_value(page.text, "csrf_token")
    forged = client.post(f"{CONSOLE}/decisions/{decision_id}/notice", follow_redirects=False)
    assert forged.status_code == 403
    made = client.post(
        f"{CONSOLE}/decisions/{decision_id}/notice",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert made.status_code == 303 and made.headers["location"].endswith("#notice")
    shown = client.get(f"{CONSOLE}/decisions/{decision_id}")
    assert 'id="notice-status"' in shown.text and 'id="make-notice"' not in shown.text
    pdf = client.get(f"{CONSOLE}/decisions/{decision_id}/notice.pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")

    empty = client.post(
        f"{CONSOLE}/decisions/{decision_id}/appeal",
        data={
            "csrf_token": token,
            "statement": " ",
            "feature.income": "lots",
            "original.income": "12000.0",
        },
    )
    assert empty.status_code == 422
    assert "statement" in empty.text and 'id="appeal-problems"' in empty.text
    bad = client.post(
        f"{CONSOLE}/decisions/{decision_id}/appeal",
        data={
            "csrf_token": token,
            "statement": "wrong",
            "feature.income": "lots",
            "original.income": "12000.0",
        },
    )
    assert bad.status_code == 422 and "overrides.income" in bad.text
    opened = client.post(
        f"{CONSOLE}/decisions/{decision_id}/appeal",
        data={
            "csrf_token": token,
            "statement": "My income is 90,000.",
            "feature.income": "90000",
            "original.income": "12000.0",
        },
        follow_redirects=False,
    )
    assert opened.status_code == 303 and "/console/cases/" in opened.headers["location"]
    case = client.get(opened.headers["location"])
    assert "income: 90000" in case.text and 'id="reviewer"' not in case.text, "appeals: no assign"
    listed = client.get(f"{CONSOLE}/cases")
    assert listed.status_code == 200 and "open" in listed.text
