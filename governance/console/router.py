"""The web console's pages. Thin: each page reads through the same services as the API route it
mirrors, with the same roles and the same access-trail entries, and renders a template."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from core.audit import access
from core.auth import sessions
from core.auth.schemas import Principal
from core.config import Settings
from core.db import transaction
from core.deps import SessionDep, now_of, public
from core.errors import GovernanceError, InvalidInput
from core.pagination import Page
from explain.drift import service as drift_service
from explain.fairness import service as fairness_service
from governance.audit import alerts, verification
from governance.compliance import annex_iv, card, decisions, dossier, inventory, retention, trail
from governance.compliance.router import export_response
from governance.console import auth, casework, forms, nav
from governance.console.auth import (
    Auditor,
    DecisionReader,
    FairnessReader,
    ModelReader,
    Monitor,
    Rebuilder,
    Searcher,
    SignedIn,
)
from governance.console.render import PREFIX, fragment, page, see_other
from lineage import registry
from lineage.router import VersionDep
from rebuild import access as rebuild_access
from rebuild import service as rebuild_service
from serving import endpoints as endpoint_service

router = APIRouter(prefix=PREFIX, include_in_schema=False)
SIGN_IN_COOKIE = "govern_sign_in"
DecisionId = Annotated[str, Path(max_length=64)]
PAGE_ROWS = 50


@router.get("", dependencies=[Depends(public)])
def console_root() -> RedirectResponse:
    return see_other(f"{PREFIX}/")


@router.get("/", response_class=HTMLResponse)
def home(request: Request, principal: SignedIn) -> HTMLResponse:
    return page(request, "home.html", {"pages": nav.nav_for(principal)})


@router.get("/sign-in", response_class=HTMLResponse, dependencies=[Depends(public)])
def sign_in_form(
    request: Request,
    why: Annotated[str | None, Query(max_length=32)] = None,
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> HTMLResponse:
    return _sign_in_page(request, auth.WHY.get(why or ""), next, 200)


def _sign_in_page(
    request: Request, message: str | None, next_: str | None, status_code: int
) -> HTMLResponse:
    # A sign-in form carries a token matched by a cookie of its own: a page elsewhere cannot
    # sign a browser in with the attacker's key.
    form_token = secrets.token_urlsafe(24)
    response = page(
        request,
        "sign_in.html",
        {
            "message": message,
            "next": auth.next_path(next_),
            "form_token": form_token,
            "failed": status_code != 200,
        },
        status_code=status_code,
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        form_token,
        max_age=3600,
        path=f"{PREFIX}/sign-in",
        httponly=True,
        secure=auth.secure(request),
        samesite="strict",
    )
    return response


@router.post("/sign-in", response_class=HTMLResponse, dependencies=[Depends(public)])
def sign_in(
    request: Request,
    api_key: Annotated[str, Form(max_length=200)] = "",
    form_token: Annotated[str, Form(max_length=64)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    settings: Settings = request.app.state.settings
    expected = request.cookies.get(SIGN_IN_COOKIE)
    if not expected or not secrets.compare_digest(expected, form_token):
        return _sign_in_page(request, "This sign-in form has expired. Please try again.", next, 403)
    if not api_key.strip():
        return _sign_in_page(request, "Enter your API key.", next, 422)
    try:
        with transaction(request.app.state.sessions) as session:
            token, _principal = sessions.sign_in(
                session, api_key.strip(), max_age_s=settings.console_session_max_s
            )
    except GovernanceError as exc:
        return _sign_in_page(request, f"That key was not accepted: {exc.message}.", next, 401)
    response = see_other(auth.next_path(next))
    auth.set_cookie(response, request, token, settings.console_session_max_s)
    response.delete_cookie(SIGN_IN_COOKIE, path=f"{PREFIX}/sign-in")
    return response


@router.post("/sign-out", dependencies=[auth.CsrfChecked])
def sign_out(request: Request, _principal: SignedIn) -> RedirectResponse:
    with transaction(request.app.state.sessions) as session:
        sessions.sign_out(session, auth.session_token(request))
    response = see_other(f"{auth.SIGN_IN}?why=signed_out")
    auth.clear_cookie(response, request)
    return response


@router.get("/decisions", response_class=HTMLResponse)
def decision_search(
    request: Request,
    session: SessionDep,
    principal: Searcher,
    cursor: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> HTMLResponse:
    form = forms.DecisionSearch.of(request.query_params)
    rows: list[dict[str, Any]] = []
    next_cursor = None
    if form.problems:
        return page(request, "decisions.html", {"form": form, "rows": rows, "next": None}, 422)
    filters = form.filters()
    rows, next_cursor = decisions.page(session, filters, PAGE_ROWS, cursor)
    access.record(
        session,
        principal,
        "decisions.query",
        params={**filters.params(), "limit": PAGE_ROWS, "cursor": cursor},
        rows=len(rows),
    )
    return page(
        request,
        "decisions.html",
        {"form": form, "rows": rows, "next": next_cursor, "cursor": cursor},
    )


@router.get("/decisions/export")
def decision_export(
    request: Request,
    session: SessionDep,
    principal: Searcher,
    format: Annotated[Literal["csv", "parquet"], Query()] = "csv",
) -> Response:
    form = forms.DecisionSearch.of(request.query_params)
    if form.problems:
        raise InvalidInput("the search has problems", details=form.problems)
    return export_response(request, session, principal, form.filters(), format)


@router.get("/open", response_class=HTMLResponse)
def open_decision(
    _principal: DecisionReader,
    decision_id: Annotated[str, Query(min_length=1, max_length=64)],
) -> RedirectResponse:
    return see_other(f"{PREFIX}/decisions/{auth.quoted(decision_id.strip())}")


@router.get("/decisions/{decision_id}", response_class=HTMLResponse)
def decision_page(
    decision_id: DecisionId,
    request: Request,
    session: SessionDep,
    principal: DecisionReader,
    explain: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    """The dossier as a page. The first time a decision is opened its explanations are not
    stored yet: the page comes at once and loads them from ``/explanations`` (or, without
    JavaScript, from ``?explain=true``) while it says they are being computed."""
    document = dossier.build(
        session,
        request.app.state.serving,
        request.app.state.explainers,
        decision_id,
        principal,
        with_explanations=explain or not dossier.explanations_pending(session, decision_id),
    )
    return page(
        request,
        "decision.html",
        {
            "d": document,
            "chart": forms.shap_chart(document),
            "notice": casework.notice_of(session, request, principal, decision_id),
        },
    )


@router.get("/decisions/{decision_id}/explanations", response_class=HTMLResponse)
def decision_explanations(
    decision_id: DecisionId, request: Request, session: SessionDep, principal: DecisionReader
) -> HTMLResponse:
    """The reasons, SHAP chart and counterfactuals of a decision page (htmx), computed and stored
    the first time."""
    explained = dossier.explanations_of(
        session, request.app.state.explainers, decision_id, principal
    )
    return fragment(
        "decision_explanations.html", {"d": explained, "chart": forms.shap_chart(explained)}
    )


@router.post(
    "/decisions/{decision_id}/replay",
    response_class=HTMLResponse,
    dependencies=[auth.CsrfChecked],
)
async def replay(
    decision_id: DecisionId, request: Request, principal: DecisionReader
) -> HTMLResponse:
    submitted = await request.form(max_fields=200)
    overrides, problems = forms.overrides_of(submitted)
    if problems:
        return fragment("replay.html", {"problems": problems, "r": None})
    try:  # scoring (and maybe loading the model) on a worker thread, not the event loop
        result = await run_in_threadpool(_replay, request, decision_id, overrides, principal)
    except InvalidInput as exc:
        return fragment("replay.html", {"problems": forms.problems_of(exc), "r": None})
    return fragment("replay.html", {"problems": [], "r": result})


def _replay(
    request: Request, decision_id: str, overrides: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    with transaction(request.app.state.sessions) as session:
        return dossier.replay_in_words(
            session, request.app.state.serving, decision_id, overrides, principal
        )


@router.get("/audit", response_class=HTMLResponse)
def audit(
    request: Request,
    session: SessionDep,
    _principal: Auditor,
    cursor: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    key_id: Annotated[str | None, Query(max_length=32)] = None,
    target: Annotated[str | None, Query(max_length=200)] = None,
    verify: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    """Chain verification (on request: it reads every record), signed checkpoints, retention,
    and the access trail, newest first."""
    settings: Settings = request.app.state.settings
    report = verification.verify_report(session, settings) if verify else None
    filters = {"action": action or None, "key_id": key_id or None, "target": target or None}
    entries, next_cursor = trail.entries(
        session,
        limit=PAGE_ROWS,
        cursor=cursor,
        action=filters["action"],
        key_id=filters["key_id"],
        target=filters["target"],
    )
    return page(
        request,
        "audit.html",
        {
            "report": report,
            "checkpoints": [
                verification.checkpoint_dict(c) for c in verification.stored_checkpoints(session)
            ],
            "retention": retention.plan(session, settings.retention_days),
            "entries": entries,
            "next": next_cursor,
            "filters": {k: v or "" for k, v in filters.items()},
        },
    )


@router.get("/fairness", response_class=HTMLResponse)
def fairness(request: Request, session: SessionDep, principal: FairnessReader) -> HTMLResponse:
    """Selection rates by group with their intervals, disparate impact against the four-fifths
    line, error rates from outcomes, and the trend by period: ``GET /api/v1/fairness`` as a page."""
    settings: Settings = request.app.state.settings
    names = endpoint_service.list_endpoints(session)
    form = forms.FairnessForm.of(request.query_params, names)
    protected = forms.protected_of(request.app.state.serving, form.values["endpoint"])
    report = None
    if form.ready and not form.problems:
        try:
            report = fairness_service.report(
                session,
                principal,
                **form.arguments(),
                min_group_size=form.parsed.get("min_group_size")
                or settings.fairness_min_group_size,
                min_cell_size=settings.min_cell_size,
                seed=None,
            )
        except InvalidInput as exc:  # an attribute the models do not record, say
            form.problems += forms.problems_of(exc)
    return page(
        request,
        "fairness.html",
        {
            "form": form,
            "endpoints": names,
            "protected": protected,
            "report": report,
            "chart": forms.fairness_chart(report) if report else None,
        },
        status_code=422 if form.problems else 200,
    )


@router.get("/models", response_class=HTMLResponse)
def models(
    request: Request,
    session: SessionDep,
    _principal: ModelReader,
    status: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    """The inventory: each version's stage history as a timeline, where it served and when, its
    decisions, its gate and its latest rebuild (``GET /api/v1/inventory`` as a page)."""
    chosen = status if status in ("in_use", "in_development", "retired") else None
    items = inventory.inventory(session, status=chosen)
    return page(
        request,
        "models.html",
        {
            "items": items,
            "status": chosen or "",
            "may_rebuild": nav.may(_principal, nav.REBUILDERS),
        },
    )


@router.post(
    "/models/{name}/versions/{version}/rebuild",
    response_class=HTMLResponse,
    dependencies=[auth.CsrfChecked],
)
def start_rebuild(
    request: Request,
    principal: Rebuilder,
    name: Annotated[str, Path(max_length=100)],
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> HTMLResponse:
    """Rebuild this version from its lineage (``POST .../rebuilds``): the fragment shows its
    progress, polling until it is done."""
    with transaction(request.app.state.sessions) as session:
        model, found = registry.get_version(session=session, name=name, version=version)
        job, created = rebuild_service.create_rebuild(
            session=session,
            model=model,
            version=found,
            actor=principal.key_id,
            executor=request.app.state.executor.name,
        )
        if created:
            request.app.state.limiter.admit(principal.key_id, "rebuilds")
        shown = rebuild_access.public(job, principal)
    if created:  # after the commit, so that the job finds its row
        request.app.state.executor.submit(
            rebuild_service.execute_rebuild, request.app.state.settings, shown.id
        )
    return fragment("rebuild.html", {"r": shown})


@router.get("/rebuilds/{rebuild_id}", response_class=HTMLResponse)
def rebuild_progress(
    session: SessionDep,
    principal: Rebuilder,
    rebuild_id: Annotated[int, Path(ge=1, le=2**62)],
) -> HTMLResponse:
    return fragment(
        "rebuild.html", {"r": rebuild_access.read(session, rebuild_id, principal, None)}
    )


@router.get("/drift", response_class=HTMLResponse)
def drift(request: Request, session: SessionDep, principal: Monitor) -> HTMLResponse:
    """Each feature's live inputs against its model version's training rows, with the test used
    and its verdict (``GET /api/v1/drift``), and the probing alerts with their episodes."""
    names = endpoint_service.list_endpoints(session)
    form = forms.DriftForm.of(request.query_params, names)
    report = None
    if form.values["endpoint"] and not form.problems:
        report = _drift_report(request, session, principal, form)
    found = alerts.list_alerts(
        session,
        Page(limit=PAGE_ROWS, cursor=None),
        kind=None,
        key_id=None,
        endpoint=form.values["endpoint"] or None,
        since=None,
        until=None,
    )
    return page(
        request,
        "drift.html",
        {
            "form": form,
            "endpoints": names,
            "report": report,
            "chart": forms.drift_chart(report) if report else None,
            "alerts": [alerts.alert_public(a) for a in found],
        },
        status_code=422 if form.problems else 200,
    )


def _drift_report(
    request: Request, session: Session, principal: Principal, form: forms.DriftForm
) -> dict[str, Any] | None:
    settings: Settings = request.app.state.settings
    try:
        return drift_service.report(
            session,
            principal,
            request.app.state.explainers,
            endpoint=form.values["endpoint"],
            since=form.parsed.get("since"),
            until=form.parsed.get("until"),
            model=None,
            version=form.parsed.get("version"),
            alpha=settings.drift_alpha,
            psi_threshold=settings.drift_psi_threshold,
            min_samples=settings.drift_min_samples,
            resamples=settings.drift_resamples,
        )
    except InvalidInput as exc:
        form.problems += forms.problems_of(exc)
        return None


@router.get(
    "/models/{name}/versions/{version}/technical-documentation", response_class=HTMLResponse
)
def technical_documentation(
    request: Request, session: SessionDep, principal: ModelReader, found: VersionDep
) -> HTMLResponse:
    """The EU AI Act's technical documentation (``GET .../technical-documentation``)."""
    settings = request.app.state.settings
    document = annex_iv.document(session, principal, settings, *found, now_of(request))
    return page(request, "annex_iv.html", {"d": jsonable_encoder(document)})


@router.get("/models/{name}/versions/{version}", response_class=HTMLResponse)
def model_card(
    request: Request, session: SessionDep, principal: ModelReader, found: VersionDep
) -> HTMLResponse:
    """The model card (``GET .../card``): intended use, data, metrics overall and by group,
    the gate, live fairness, lineage and the latest rebuild."""
    document = card.card(session, principal, request.app.state.settings, *found)
    return page(
        request,
        "card.html",
        {"c": jsonable_encoder(document), "may_rebuild": nav.may(principal, nav.REBUILDERS)},
    )
