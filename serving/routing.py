"""Choosing a route: weighted random, or sticky by subject. Pure."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from serving.schemas import EndpointConfigDocument, RouteConfig


def subject_point(endpoint: str, subject_id: str) -> float:
    """A stable point in [0, 1) for a subject: the same applicant always lands in the same place."""
    digest = hashlib.sha256(f"{endpoint}\x00{subject_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(routes: Sequence[RouteConfig], point: float) -> RouteConfig:
    total = sum(float(r.weight) for r in routes)
    threshold = point * total
    running = 0.0
    for route in routes:
        running += float(route.weight)
        if threshold < running:
            return route
    return routes[-1]


def choose_route(
    endpoint: str,
    config: EndpointConfigDocument,
    subject_id: str | None,
    rng: random.Random,
) -> RouteConfig:
    routes = config.routes
    if len(routes) == 1:
        return routes[0]
    if config.sticky and subject_id:
        return pick(routes, subject_point(endpoint, subject_id))
    return pick(routes, rng.random())
