"""What the decision log holds for one record: a decision, a shadow decision or a rejected request.

A payload is built once, frozen, when the record is made. ``chain_content`` is the dict hashed
into the decision chain: its keys and values are exactly those of every chain written so far,
so changing them breaks verification of the records already stored. ``columns`` are the table
columns that repeat parts of it for queries. ``from_content`` reads stored content back, for
verification (which re-derives the columns and compares them with the row) and for lookups.

Content written before issue 7 has no outlier fields, and a rejection written before issue 16
has no ``truncated``; those stay absent, so stored content reads back to itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from core.db import utcnow
from core.errors import GovernanceError
from serving.summary import clip, summarize

Kind = Literal["decision", "shadow", "rejected"]
KINDS: frozenset[str] = frozenset(get_args(Kind))
# A reason's message is stored up to this many characters; longer ones are cut and marked.
MAX_REASON = 1000


@dataclass(frozen=True, slots=True)
class ScoredBy:
    """The model version that scored a decision."""

    name: str
    version: int
    sha256: str

    def content(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class Outlier:
    """How far the input lies from the model's training data (``lineage.outliers``)."""

    score: float
    is_outlier: bool

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> Outlier | None:
        """From ``LoadedModel.outlier_fields`` (empty without a detector, or when off)."""
        if not fields:
            return None
        return cls(score=fields["outlier_score"], is_outlier=fields["is_outlier"])


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request was refused, and a bounded summary of what was sent (``serving.summary``).

    ``truncated`` says whether either summary was cut; None for rejections logged before it
    was recorded."""

    code: str
    message: str
    details: Any
    request: Any
    truncated: Mapping[str, bool] | None

    @classmethod
    def of(cls, error: GovernanceError, body: Any) -> Rejection:
        details, details_cut = summarize(error.details)
        request, request_cut = summarize(body) if body is not None else (None, False)
        return cls(
            code=error.code,
            message=clip(error.message, MAX_REASON),
            details=details,
            request=request,
            truncated={
                "reason": details_cut or len(error.message) > MAX_REASON,
                "request": request_cut,
            },
        )

    def reason(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


@dataclass(frozen=True, slots=True)
class DecisionPayload:
    """One record of the decision log. Decisions and shadow decisions carry what was scored and
    what was answered; a rejected request carries its ``rejection`` instead."""

    decision_id: str
    kind: Kind
    created_at: datetime
    endpoint: str
    key_id: str
    model: ScoredBy | None = None
    route: str | None = None
    subject_id: str | None = None
    features: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    label: Any = None
    score: float | None = None
    outlier: Outlier | None = None
    latency_ms: float | None = None  # live decisions: request received to decision made
    parent_decision_id: str | None = None  # shadow decisions: the live decision they shadow
    rejection: Rejection | None = None

    @classmethod
    def decision(
        cls,
        *,
        endpoint: str,
        key_id: str,
        model: ScoredBy,
        route: str,
        subject_id: str | None,
        features: dict[str, Any],
        context: dict[str, Any] | None,
        label: Any,
        score: float,
        outlier: Outlier | None,
        latency_ms: float,
        decision_id: str | None = None,
        created_at: datetime | None = None,
    ) -> DecisionPayload:
        """A live decision: the answer a caller receives."""
        return cls(
            decision_id=decision_id or str(uuid.uuid4()),
            kind="decision",
            created_at=created_at or utcnow(),
            endpoint=endpoint,
            key_id=key_id,
            model=model,
            route=route,
            subject_id=subject_id,
            features=features,
            context=context or {},
            label=label,
            score=score,
            outlier=outlier,
            latency_ms=round(latency_ms, 3),
        )

    @classmethod
    def shadow(
        cls,
        *,
        parent: DecisionPayload,
        model: ScoredBy,
        label: Any,
        score: float,
        outlier: Outlier | None,
        decision_id: str | None = None,
        created_at: datetime | None = None,
    ) -> DecisionPayload:
        """A shadow model's decision on the same input as the live ``parent``, never answered."""
        return cls(
            decision_id=decision_id or str(uuid.uuid4()),
            kind="shadow",
            created_at=created_at or utcnow(),
            endpoint=parent.endpoint,
            key_id=parent.key_id,
            model=model,
            route="shadow",
            subject_id=parent.subject_id,
            features=parent.features,
            context=parent.context,
            label=label,
            score=score,
            outlier=outlier,
            parent_decision_id=parent.decision_id,
        )

    @classmethod
    def rejected(
        cls,
        *,
        endpoint: str,
        key_id: str,
        error: GovernanceError,
        body: Any,
        decision_id: str | None = None,
        created_at: datetime | None = None,
    ) -> DecisionPayload:
        """A refused request: why, and a bounded summary of the ``body`` sent (None if unread)."""
        return cls(
            decision_id=decision_id or str(uuid.uuid4()),
            kind="rejected",
            created_at=created_at or utcnow(),
            endpoint=endpoint,
            key_id=key_id,
            rejection=Rejection.of(error, body),
        )

    def chain_content(self) -> dict[str, Any]:
        """The content hashed into the chain (as canonical JSON: ``core.audit.chain``)."""
        content: dict[str, Any] = {
            "decision_id": self.decision_id,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "endpoint": self.endpoint,
            "key_id": self.key_id,
        }
        if self.kind == "rejected":
            assert self.rejection is not None
            content["reason"] = self.rejection.reason()
            content["request"] = self.rejection.request
            if self.rejection.truncated is not None:
                content["truncated"] = dict(self.rejection.truncated)
            return content
        content.update(
            model=self.model.content() if self.model is not None else None,
            route=self.route,
            subject_id=self.subject_id,
            features=self.features,
            context=self.context,
            label=self.label,
            score=self.score,
        )
        if self.outlier is not None:
            content["outlier_score"] = self.outlier.score
            content["is_outlier"] = self.outlier.is_outlier
        if self.latency_ms is not None:
            content["latency_ms"] = self.latency_ms
        if self.parent_decision_id is not None:
            content["parent_decision_id"] = self.parent_decision_id
        return content

    def columns(self) -> dict[str, Any]:
        """The row's queryable columns, all repeated from the hashed content."""
        return {
            "decision_id": self.decision_id,
            "kind": self.kind,
            "created_at": self.created_at,
            "endpoint": self.endpoint,
            "model": self.model.name if self.model is not None else None,
            "version": self.model.version if self.model is not None else None,
            "artifact_sha256": self.model.sha256 if self.model is not None else None,
            "route": self.route,
            "subject_id": self.subject_id,
            "label": None if self.label is None else str(self.label),
            "score": self.score,
            "parent_decision_id": self.parent_decision_id,
            "key_id": self.key_id,
            "context": self.context,
            "features": self.features,
            "outlier_score": self.outlier.score if self.outlier is not None else None,
            "is_outlier": self.outlier.is_outlier if self.outlier is not None else None,
            "latency_ms": self.latency_ms,
        }

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> DecisionPayload:
        """Stored content read back. Raises KeyError, ValueError or TypeError for content that
        no version of govern wrote (verification reports such a row as altered)."""
        kind = content["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}")
        model = content.get("model")
        return cls(
            decision_id=content["decision_id"],
            kind=kind,
            created_at=datetime.fromisoformat(content["created_at"]),
            endpoint=content["endpoint"],
            key_id=content["key_id"],
            model=ScoredBy(**model) if model else None,
            route=content.get("route"),
            subject_id=content.get("subject_id"),
            features=content.get("features"),
            context=content.get("context"),
            label=content.get("label"),
            score=content.get("score"),
            outlier=(
                Outlier(score=content["outlier_score"], is_outlier=content["is_outlier"])
                if "outlier_score" in content
                else None
            ),
            latency_ms=content.get("latency_ms"),
            parent_decision_id=content.get("parent_decision_id"),
            rejection=_rejection(content) if kind == "rejected" else None,
        )


def _rejection(content: Mapping[str, Any]) -> Rejection:
    reason = content["reason"]
    return Rejection(
        code=reason["code"],
        message=reason["message"],
        details=reason["details"],
        request=content["request"],
        truncated=content.get("truncated"),
    )
