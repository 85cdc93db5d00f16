"""Rendering console pages: one Jinja environment, the page security headers, and the filters
that show numbers and times to a person.

Every value is escaped by autoescaping. Data for a chart goes into the page as JSON with
``tojson`` (which escapes ``<``, ``>`` and ``&``) inside a ``<script type="application/json">``,
never into a script; the Content-Security-Policy allows scripts from this service only.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import ChainableUndefined, Environment, FileSystemLoader
from markupsafe import Markup, escape

from core.auth.sessions import csrf_token
from governance.compliance.html import VERDICT_CLASS, group_name, interval, number, readable
from governance.console.forms import distributions
from governance.console.nav import PREFIX, nav_for

HERE = Path(__file__).parent
STATIC = f"{PREFIX}/static"
__all__ = ["HEADERS", "PREFIX", "STATIC", "fragment", "page"]

_ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    # Documents omit fields that do not apply (a model registered from outside has no train
    # split): a missing one shows as nothing, never as a failed page.
    undefined=ChainableUndefined,
)

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def rounded(value: Any, digits: int = 3) -> Markup:
    """A number rounded for reading, its exact value on hover."""
    if value is None:
        return Markup('<span class="muted">missing</span>')
    if isinstance(value, bool) or not isinstance(value, int | float):
        return escape(readable(value))
    shown = f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"
    return Markup('<span title="{}">{}</span>').format(repr(value), shown)


def when(value: datetime | str | None) -> Markup:
    """A time: UTC in the page and on hover; console.js shows it in the viewer's zone."""
    if value is None:
        return Markup('<span class="muted">not recorded</span>')
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    iso = value.isoformat()
    utc = value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, utc, utc)


def percent(value: Any, digits: int = 1) -> Markup:
    if value is None:
        return Markup('<span class="muted">not known</span>')
    return Markup('<span title="{}">{}%</span>').format(repr(value), f"{100 * value:.{digits}f}")


_ENV.filters["readable"] = readable
_ENV.filters["number"] = number
_ENV.filters["interval"] = interval
_ENV.filters["group_name"] = group_name
_ENV.filters["yesno"] = lambda value: readable(value, "not known")
_ENV.globals["verdict_class"] = VERDICT_CLASS
_ENV.filters["rounded"] = rounded
_ENV.filters["when"] = when
_ENV.filters["percent"] = percent
_ENV.filters["distributions"] = distributions
_ENV.globals["static"] = STATIC
_ENV.globals["prefix"] = PREFIX


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A page, with the signed-in person (if any), their CSRF token and the security headers."""
    state = request.scope.get("state", {})
    principal = state.get("principal")
    token = state.get("session_token")
    values = {
        "principal": principal,
        "csrf": csrf_token(token) if isinstance(token, str) else None,
        "nav": nav_for(principal, request.url.path),
        **context,
    }
    body = _ENV.get_template(template).render(values)
    return HTMLResponse(body, status_code=status_code, headers={**HEADERS, **(headers or {})})


def see_other(location: str) -> RedirectResponse:
    """After a form: go to the page that shows what it did (303)."""
    return RedirectResponse(location, status_code=303, headers=HEADERS)


def fragment(template: str, context: dict[str, Any]) -> HTMLResponse:
    """A piece of a page, for htmx to swap in."""
    return HTMLResponse(_ENV.get_template(template).render(context), headers=HEADERS)
