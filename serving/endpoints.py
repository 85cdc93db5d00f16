"""Endpoints and their configuration: routes, shadows, stickiness; every change is kept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from core.errors import Conflict, InvalidInput, NotFound
from lineage import registry
from lineage.models import Stage
from serving.models import Endpoint, EndpointConfig
from serving.schemas import (
    ConfigChange,
    EndpointConfigDocument,
    EndpointConfigIn,
    EndpointPublic,
    Target,
)


def endpoint_row(session: Session, name: str) -> Endpoint:
    found = session.exec(select(Endpoint).where(Endpoint.name == name)).first()
    if found is None:
        raise NotFound(f"no endpoint named {name!r}", details={"endpoint": name})
    return found


def config_row(session: Session, name: str, back: int = 0) -> EndpointConfig | None:
    """The endpoint's latest configuration row, or the one ``back`` changes before it."""
    endpoint = endpoint_row(session, name)
    return session.exec(
        select(EndpointConfig)
        .where(EndpointConfig.endpoint_id == endpoint.id)
        .order_by(col(EndpointConfig.id).desc())
        .offset(back)
        .limit(1)
    ).first()


def current_config(session: Session, name: str) -> EndpointConfigDocument:
    latest = config_row(session, name)
    assert latest is not None
    return EndpointConfigDocument.of(latest.config)


def list_endpoints(session: Session) -> list[str]:
    return list(session.exec(select(Endpoint.name).order_by(col(Endpoint.name))).all())


def put_endpoint(
    *, session: Session, name: str, config_in: EndpointConfigIn, actor: str
) -> Endpoint:
    config = config_in.resolved()
    _check_targets(session, config)
    endpoint = session.exec(select(Endpoint).where(Endpoint.name == name)).first()
    if endpoint is None:
        endpoint = Endpoint(name=name, created_by=actor)
        session.add(endpoint)
        session.flush()
    assert endpoint.id is not None
    session.add(EndpointConfig(endpoint_id=endpoint.id, config=config.stored(), created_by=actor))
    session.flush()
    return endpoint


def endpoint_public(session: Session, name: str) -> EndpointPublic:
    endpoint = endpoint_row(session, name)
    rows = session.exec(
        select(EndpointConfig)
        .where(EndpointConfig.endpoint_id == endpoint.id)
        .order_by(col(EndpointConfig.id))
    ).all()
    history = []
    previous: dict[str, Any] | None = None
    for row in rows:
        history.append(
            ConfigChange(at=row.created_at, by=row.created_by, old=previous, new=row.config)
        )
        previous = row.config
    latest = rows[-1]
    return EndpointPublic(
        name=name,
        config=latest.config,
        updated_at=latest.created_at,
        updated_by=latest.created_by,
        history=history,
    )


def _check_targets(session: Session, config: EndpointConfigDocument) -> None:
    """Every route and shadow names a registered version (else 422), and may serve (else 409):

    - every route, the canary and A/B arms included, points at a version whose promotion gate
      passed, and that is not archived;
    - the first route, the live one that takes the traffic no other route does, points at a
      version in production;
    - a shadow (scored, never answered) may point at any version that is not archived.
    """
    missing: list[dict[str, str]] = []
    refused: list[dict[str, Any]] = []
    groups: dict[str, Sequence[Target]] = {"routes": config.routes, "shadows": config.shadows}
    for group, targets in groups.items():
        for i, target in enumerate(targets):
            where, named = f"{group}.{i}", f"{target.model} v{target.version}"
            try:
                _model, version = registry.get_version(
                    session=session, name=target.model, version=target.version
                )
            except NotFound as exc:
                missing.append({"field": where, "message": exc.message})
                continue
            stage = registry.current_stage(session, version)
            rule = _serving_rule(group, i, version.gate_passed, stage)
            if rule is not None:
                refused.append(
                    {
                        "field": where,
                        "model": target.model,
                        "version": target.version,
                        "stage": stage.value,
                        "rule": rule,
                        "message": f"{named}: {rule}",
                    }
                )
    if missing:
        raise InvalidInput("the configuration names models that do not exist", details=missing)
    if refused:
        raise Conflict(
            "the configuration routes traffic to versions that may not serve it: "
            + "; ".join(r["message"] for r in refused),
            code="not_servable",
            details=refused,
        )


def _serving_rule(group: str, index: int, gate_passed: bool, stage: Stage) -> str | None:
    """The rule a target breaks, or None."""
    if stage is Stage.archived:
        return "an archived version serves nothing, not even as a shadow"
    if group == "shadows":
        return None
    if not gate_passed:
        return "it failed its promotion gate, so it may not answer any traffic"
    if index == 0 and stage is not Stage.production:
        return (
            f"the live (first) route must point at a version in production; it is in {stage.value}"
        )
    return None
