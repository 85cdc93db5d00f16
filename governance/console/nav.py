"""Which pages each role may use. The roles are exactly those of the API routes a page reads; a
page a role may not use is not shown, and the auth gate refuses it anyway. Admin sees all."""

from __future__ import annotations

from core.auth.models import Role
from core.auth.schemas import Principal

PREFIX = "/console"

DECISION_SEARCH = (Role.compliance,)
DECISION_READERS = (Role.compliance, Role.appeals, Role.data_scientist)
AUDITORS = (Role.compliance,)
FAIRNESS = (Role.compliance,)  # it reads protected attributes
MODELS = (Role.compliance, Role.data_scientist)
MONITORS = (Role.compliance, Role.data_scientist)
REBUILDERS = (Role.compliance, Role.data_scientist)
NOTIFIERS = (Role.compliance, Role.appeals)  # notices, and opening appeals
CASE_READERS = (Role.compliance, Role.appeals, Role.reviewer)
CASE_DECIDERS = (Role.compliance, Role.reviewer)
ASSIGNERS = (Role.compliance,)
EXPERIMENTS = (Role.compliance, Role.data_scientist)
SEARCHES = (Role.compliance, Role.data_scientist, Role.validator)
PROMOTIONS = (Role.compliance, Role.data_scientist, Role.validator)
VALIDATORS = (Role.validator,)
ANYONE = tuple(Role)

# (label, path, roles), in the order of the navigation bar.
PAGES: list[tuple[str, str, tuple[Role, ...]]] = [
    ("Decisions", f"{PREFIX}/decisions", DECISION_SEARCH),
    ("Models", f"{PREFIX}/models", MODELS),
    ("Fairness", f"{PREFIX}/fairness", FAIRNESS),
    ("Drift and alerts", f"{PREFIX}/drift", MONITORS),
    ("Experiments", f"{PREFIX}/experiments", EXPERIMENTS),
    ("Fairer models", f"{PREFIX}/lda-searches", SEARCHES),
    ("Promotions", f"{PREFIX}/promotions", PROMOTIONS),
    ("Notices", f"{PREFIX}/notices", NOTIFIERS),
    ("Appeals", f"{PREFIX}/cases", CASE_READERS),
    ("Audit", f"{PREFIX}/audit", AUDITORS),
]


def may(principal: Principal, roles: tuple[Role, ...]) -> bool:
    return principal.role == Role.admin or principal.role in roles


def nav_for(principal: Principal | None, current: str = "") -> list[dict[str, str | bool]]:
    """The pages this person may use, each marked current when the path is under it."""
    if principal is None:
        return []
    return [
        {"label": label, "href": path, "current": current.startswith(path)}
        for label, path, roles in PAGES
        if may(principal, roles)
    ]
