"""The console in a real browser (headless Chromium): what an appeals handler and a compliance
officer do, at desktop and phone sizes, with axe-core checking every page.

Screenshots of each page at both sizes go to ``var/screenshots/`` (git-ignored)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from core.auth.models import Role
from tests.conftest import KeyMaker, Served
from tests.console.browser import SIZES, LiveServer, axe_violations, screenshot
from tests.support.factories import applicant

pytestmark = pytest.mark.usefixtures("sqlite_only")  # one backend: the pages are the same
DENIED = applicant(income=12000.0, debt_to_income=0.45, late_payments=3)


def _predict(live: LiveServer, key: str, subject: str, features: dict[str, Any]) -> str:
    response = httpx.post(
        f"{live.url}/api/v1/endpoints/credit/predict",
        headers={"Authorization": f"Bearer {key}"},
        json={"subject_id": subject, "features": features},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["decision_id"])


def _wait(driver: Any, condition: Callable[[Any], Any], seconds: float = 30) -> Any:
    return WebDriverWait(driver, seconds).until(condition)


def _sign_in(driver: Any, live: LiveServer, key: str, path: str = "/console/") -> None:
    driver.get(live.url + path)
    _wait(driver, ec.presence_of_element_located((By.ID, "api_key")))
    driver.find_element(By.ID, "api_key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "form.sign-out")))


def _check_page(driver: Any, name: str, violations: dict[str, Any]) -> None:
    """axe-core on the page at both sizes, and a screenshot of each."""
    for size, (width, height) in SIZES.items():
        driver.set_window_size(width, height)
        found = axe_violations(driver)
        if found:
            violations[f"{name}@{size}"] = found
        screenshot(driver, f"{name}-{size}")
    driver.set_window_size(*SIZES["desktop"])


def test_an_officer_finds_a_denied_decision_opens_it_and_replays_it_with_a_corrected_income(
    live: LiveServer, browser: Any, served: Served, make_key: KeyMaker
) -> None:
    predictor = make_key(Role.predictor)
    decision_id = _predict(live, predictor, "A-1001", DENIED)
    _predict(live, predictor, "B-2002", applicant())
    violations: dict[str, Any] = {}
    browser.set_window_size(*SIZES["desktop"])

    browser.get(f"{live.url}/console/decisions")
    _wait(browser, ec.presence_of_element_located((By.ID, "api_key")))
    assert "Sign in to continue." in browser.page_source
    _check_page(browser, "sign-in", violations)
    browser.find_element(By.ID, "api_key").send_keys(make_key(Role.compliance, name="Officer"))
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "f-subject_id")))
    assert browser.current_url.endswith("/console/decisions"), "back where they were going"

    browser.find_element(By.ID, "f-subject_id").send_keys("A-1001")
    before = browser.find_element(By.ID, "decisions")
    browser.find_element(By.CSS_SELECTOR, "form.search button[type=submit]").click()
    _wait(browser, ec.staleness_of(before))
    _wait(browser, ec.presence_of_element_located((By.ID, "decisions")))
    rows = browser.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")
    assert len(rows) == 1 and "A-1001" in rows[0].text
    _check_page(browser, "decisions", violations)

    rows[0].find_element(By.TAG_NAME, "a").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "decision-words")))
    assert decision_id in browser.current_url
    assert "denied" in browser.find_element(By.ID, "label").text
    # The explanations are computed the first time: the page says so, then shows them.
    _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "#reasons li")), 60)
    reasons = browser.find_elements(By.CSS_SELECTOR, "#reasons li")
    assert reasons and "No adverse reasons" not in reasons[0].text
    drawn = _wait(
        browser,
        lambda d: d.find_element(By.ID, "shap-chart").get_attribute("data-bars"),
    )
    assert int(drawn) >= 1, "the SHAP waterfall was drawn"
    _check_page(browser, "decision", violations)

    income = browser.find_element(By.CSS_SELECTOR, "input[data-feature=income]")
    income.clear()
    income.send_keys("250000")
    browser.find_element(By.CSS_SELECTOR, "#replay-form button[type=submit]").click()
    replayed = _wait(browser, ec.presence_of_element_located((By.ID, "replayed-decision")))
    assert "approved" in replayed.text
    assert "changed" in (replayed.get_attribute("class") or "")
    assert "The decision changes." in browser.find_element(By.ID, "replay-outcome").text
    _check_page(browser, "decision-replayed", violations)

    browser.find_element(By.LINK_TEXT, "Audit").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "verify-button"))).click()
    result = _wait(browser, ec.presence_of_element_located((By.ID, "verify-result")))
    assert "Every chain verifies." in result.text
    assert "dossier.read" in browser.find_element(By.ID, "trail").text, "the page read is there"
    _check_page(browser, "audit", violations)

    browser.find_element(By.CSS_SELECTOR, "form.sign-out button").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "sign-in-message")))
    assert "You have signed out." in browser.page_source
    browser.get(f"{live.url}/console/decisions/{decision_id}")
    _wait(browser, ec.presence_of_element_located((By.ID, "api_key")))
    assert "/console/sign-in" in browser.current_url, "signed out: refused"

    assert violations == {}, violations


def test_an_appeals_handler_sees_only_their_pages(
    live: LiveServer, browser: Any, served: Served, make_key: KeyMaker
) -> None:
    decision_id = _predict(live, make_key(Role.predictor), "C-3003", DENIED)
    _sign_in(browser, live, make_key(Role.appeals, name="Appeals"))
    nav = browser.find_element(By.CSS_SELECTOR, "header nav").text
    assert "Decisions" not in nav
    violations: dict[str, Any] = {}
    _check_page(browser, "home-appeals", violations)
    browser.get(f"{live.url}/console/decisions")
    _wait(browser, ec.presence_of_element_located((By.ID, "error-message")))
    assert "Not allowed" in browser.find_element(By.TAG_NAME, "h1").text
    _check_page(browser, "refused", violations)
    browser.get(f"{live.url}/console/")
    browser.find_element(By.ID, "open-id").send_keys(decision_id)
    browser.find_element(By.CSS_SELECTOR, "form.inline button").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "decision-words")))
    assert "C-3003" in browser.find_element(By.ID, "subject").text
    assert violations == {}, violations


def test_markup_in_a_subject_id_is_shown_as_text_and_never_run(
    live: LiveServer, browser: Any, served: Served, make_key: KeyMaker
) -> None:
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    decision_id = _predict(live, make_key(Role.predictor), hostile, applicant())
    _sign_in(browser, live, make_key(Role.compliance), "/console/decisions")
    browser.get(f"{live.url}/console/decisions/{decision_id}")
    subject = _wait(browser, ec.presence_of_element_located((By.ID, "subject")))
    assert subject.text == hostile
    browser.get(f"{live.url}/console/decisions")
    _wait(browser, ec.presence_of_element_located((By.ID, "decisions")))
    assert hostile in browser.find_element(By.ID, "decisions").text
    assert browser.execute_script("return window.pwned === undefined")


def test_fairness_shows_the_violated_four_fifths_line_highlighted(
    live: LiveServer, browser: Any, served: Served, make_key: KeyMaker
) -> None:
    predictor = make_key(Role.predictor)
    for i in range(35):
        for sex, features in (("F", DENIED), ("M", applicant(income=250000.0))):
            response = httpx.post(
                f"{live.url}/api/v1/endpoints/credit/predict",
                headers={"Authorization": f"Bearer {predictor}"},
                json={"subject_id": f"{sex}{i}", "features": features, "context": {"sex": sex}},
                timeout=30,
            )
            assert response.status_code == 200, response.text
    _sign_in(browser, live, make_key(Role.compliance))
    browser.find_element(By.LINK_TEXT, "Fairness").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "fa-attributes"))).send_keys("sex")
    browser.find_element(By.CSS_SELECTOR, "form.search button[type=submit]").click()
    verdict = _wait(browser, ec.presence_of_element_located((By.ID, "four-fifths")))
    assert verdict.text == "violated" and "bad" in (verdict.get_attribute("class") or "")
    marked = _wait(
        browser, lambda d: d.find_element(By.ID, "ratio-chart").get_attribute("data-violations")
    )
    assert marked == "1", "the group below the line is drawn in the violation colour"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#groups tr.violated")) == 1
    violations: dict[str, Any] = {}
    _check_page(browser, "fairness", violations)

    browser.find_element(By.LINK_TEXT, "Drift and alerts").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "drift-verdict")))
    drawn = _wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "canvas.psi-chart").get_attribute(
            "data-features"
        ),
    )
    assert int(drawn) >= 8, "every feature's PSI is drawn"
    charts = browser.find_elements(By.CSS_SELECTOR, "canvas.dist-chart")
    assert len(charts) == int(drawn), "a distribution chart per feature"
    assert all(int(c.get_attribute("data-bins") or 0) >= 2 for c in charts)
    _check_page(browser, "drift", violations)
    browser.find_element(By.LINK_TEXT, "Models").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "inventory")))
    assert "production" in browser.find_element(By.ID, "inventory").text
    _check_page(browser, "models", violations)
    browser.find_element(By.CSS_SELECTOR, "#inventory tbody a").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "gate")))
    _check_page(browser, "model-card", violations)
    assert violations == {}, violations


def test_a_notice_and_an_appeal_through_the_console_from_denial_to_the_letter(
    live: LiveServer, browser: Any, served: Served, make_key: KeyMaker
) -> None:
    """Appeals makes the notice and opens an appeal with a corrected income; compliance assigns
    a reviewer; the reviewer sees before and after and overturns; the letter says so."""
    decision_id = _predict(live, make_key(Role.predictor), "D-4004", DENIED)
    violations: dict[str, Any] = {}
    browser.set_window_size(*SIZES["desktop"])
    _sign_in(browser, live, make_key(Role.appeals, name="Appeals desk"))
    assert {"Notices", "Appeals"} <= set(
        browser.find_element(By.CSS_SELECTOR, "header nav").text.split("\n")
    )
    browser.get(f"{live.url}/console/decisions/{decision_id}")
    _wait(browser, ec.element_to_be_clickable((By.ID, "make-notice"))).click()
    _wait(browser, ec.presence_of_element_located((By.ID, "notice-status")))
    reasons = browser.find_elements(By.CSS_SELECTOR, "#notice-reasons li")
    assert 1 <= len(reasons) <= 4
    assert browser.find_element(By.ID, "notice-pdf").get_attribute("href").endswith("notice.pdf")
    _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "#reasons li")), 60)
    _check_page(browser, "decision-notice", violations)
    browser.find_element(By.CSS_SELECTOR, "#notice form button").click()  # sent by mail
    _wait(
        browser, lambda d: "by mail." in d.page_source and "Record it as sent" not in d.page_source
    )

    browser.get(f"{live.url}/console/notices")
    _wait(browser, ec.presence_of_element_located((By.ID, "notices")))
    assert "Sent (1)" in browser.find_element(By.ID, "state-sent").text
    _check_page(browser, "notices", violations)

    browser.get(f"{live.url}/console/decisions/{decision_id}/appeal")
    _wait(browser, ec.presence_of_element_located((By.ID, "appeal-form")))
    browser.find_element(By.ID, "statement").send_keys("My income is 90,000: see my payslip.")
    income = browser.find_element(By.CSS_SELECTOR, "#corrections input[data-feature=income]")
    income.clear()
    income.send_keys("90000")
    _check_page(browser, "appeal-form", violations)
    browser.find_element(By.CSS_SELECTOR, "#appeal-form button[type=submit]").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "case-status")))
    case_url = browser.current_url
    assert browser.find_element(By.ID, "case-status").text == "open"
    assert "income: 90000" in browser.page_source
    _check_page(browser, "case-open", violations)

    reviewer_key = make_key(Role.reviewer, name="Reviewer")
    browser.delete_all_cookies()
    _sign_in(browser, live, make_key(Role.compliance, name="Lead"))
    browser.get(case_url)
    field = _wait(browser, ec.presence_of_element_located((By.ID, "reviewer")))
    field.send_keys(reviewer_key.split("_")[1])
    browser.find_element(By.CSS_SELECTOR, "form.inline button[type=submit]").click()
    _wait(browser, lambda d: 'id="case-status">under review<' in d.page_source)

    browser.delete_all_cookies()
    _sign_in(browser, live, reviewer_key)
    browser.get(case_url)
    _wait(browser, ec.presence_of_element_located((By.ID, "review")))
    assert "favourable (class 1)" in browser.find_element(By.ID, "after-label").text
    assert "from" in browser.find_element(By.ID, "counterfactual").text
    _check_page(browser, "case-review", violations)
    Select(browser.find_element(By.ID, "outcome")).select_by_value("overturned")
    browser.find_element(By.ID, "rationale-input").send_keys(
        "The payslip shows an income of 90,000; with it the application is approved."
    )
    browser.find_element(By.CSS_SELECTOR, "#decide-form button[type=submit]").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "case-outcome")))
    assert browser.find_element(By.ID, "case-outcome").text == "overturned"
    browser.find_element(By.ID, "letter-html").click()
    _wait(browser, lambda d: "The decision on your appeal" in d.page_source)
    assert "your application is now" in browser.page_source and "approved" in browser.page_source
    assert violations == {}, violations


def _api(live: LiveServer, key: str, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(
        method,
        f"{live.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
        timeout=120,
    )
    assert response.status_code < 300, response.text
    return response.json()


def _until(read: Callable[[], Any], done: Callable[[Any], bool], seconds: float = 120) -> Any:
    import time

    deadline = time.monotonic() + seconds
    while True:
        found = read()
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_the_experiment_promotion_and_search_pages_pass_axe_and_a_validator_approves(
    live: LiveServer, browser: Any, served: Served, make_key: KeyMaker
) -> None:
    """A data scientist declares an experiment, asks for a promotion and runs a search through
    the API; a validator reads each page (axe at both sizes) and approves on screen."""
    predictor, scientist = make_key(Role.predictor), make_key(Role.data_scientist)
    for i in range(3):
        _predict(live, predictor, f"P-{i}", applicant(income=25000.0 + 5000 * i))
    experiment = _api(
        live,
        scientist,
        "POST",
        "/experiments",
        {
            "name": "v2 as a canary",
            "endpoint": "credit",
            "champion": {"model": "credit", "version": served.versions[0]},
            "challengers": [
                {"model": "credit", "version": served.versions[1], "mode": "canary", "weight": 0.2}
            ],
            "metric": {"kind": "approval_rate", "mde": 0.1},
            "guardrails": {"attributes": ["sex"]},
            "stopping": {"kind": "msprt", "baseline": 0.5},
        },
    )
    search = _api(
        live,
        scientist,
        "POST",
        "/lda-searches",
        {
            "base": {"model": "credit", "version": served.versions[0]},
            "space": {"params": {"max_iter": [20, 30]}},
            "attribute": "sex",
        },
    )
    asked = _api(
        live,
        scientist,
        "POST",
        f"/models/credit/versions/{served.versions[1]}/promotion",
        {"endpoint": "credit", "rationale": "v2 for the axe check", "robustness_decisions": 1},
    )
    promotion_id = asked["promotion_id"]
    gathered = _until(
        lambda: _api(live, scientist, "GET", f"/promotions/{promotion_id}"),
        lambda p: p["status"] != "gathering",
    )
    assert gathered["status"] == "requested", gathered
    admin = make_key(Role.admin)
    _api(
        live,
        admin,
        "POST",
        f"/promotions/{promotion_id}/waive",
        {"what": "evidence", "reason": "the test's versions are never rebuilt"},
    )
    searched = _until(
        lambda: _api(live, scientist, "GET", f"/lda-searches/{search['search_id']}"),
        lambda s: s["status"] != "running",
    )
    assert searched["status"] == "succeeded", searched

    violations: dict[str, Any] = {}
    browser.set_window_size(*SIZES["desktop"])
    _sign_in(browser, live, make_key(Role.validator, name="Validator"), "/console/promotions")
    for name, path in (
        ("promotions", "/console/promotions"),
        ("lda-searches", "/console/lda-searches"),
        ("lda-search", f"/console/lda-searches/{search['search_id']}"),
        ("promotion", f"/console/promotions/{promotion_id}"),
    ):
        browser.get(live.url + path)
        _wait(browser, ec.presence_of_element_located((By.TAG_NAME, "h1")))
        _check_page(browser, name, violations)
    browser.find_element(By.ID, "rationale-input").send_keys(
        "independent review: the evidence's gaps are waived in writing"
    )
    Select(browser.find_element(By.ID, "action")).select_by_value("approve")
    browser.find_element(By.CSS_SELECTOR, "#decide-form button[type=submit]").click()
    _wait(
        browser,
        ec.text_to_be_present_in_element((By.ID, "promotion-status"), "applied"),
    )
    _check_page(browser, "promotion-applied", violations)

    browser.delete_all_cookies()  # signed out: an officer signs in next
    _sign_in(browser, live, make_key(Role.compliance, name="Officer"), "/console/experiments")
    for name, path in (
        ("experiments", "/console/experiments"),
        ("experiment", f"/console/experiments/{experiment['experiment_id']}"),
        (
            "technical-documentation",
            f"/console/models/credit/versions/{served.versions[1]}/technical-documentation",
        ),
    ):
        browser.get(live.url + path)
        _wait(browser, ec.presence_of_element_located((By.TAG_NAME, "h1")))
        _check_page(browser, name, violations)
    assert violations == {}, violations
