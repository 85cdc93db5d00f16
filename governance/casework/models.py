"""Casework tables: adverse-action notices, the template versions they were rendered from, and the
``case`` hash chain that records every step (a notice generated, released, sent).

A notice row holds its current state (issued or held, sent or not); every change to it is also a
record in the ``case`` chain, in the same transaction, with the hashes of what was rendered, so
what was sent can be proven later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import JSONType, UTCDateTime, utcnow

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


class CaseEvent(SQLModel, table=True):
    """One step of a notice or an appeal, in the ``case`` hash chain. Append-only; ``payload`` is
    the canonical JSON that was hashed, the other columns repeat parts of it for queries."""

    __tablename__ = "case_event"
    __table_args__ = (
        sa.Index("ix_case_event_decision_id", "decision_id"),
        sa.Index("ix_case_event_subject", "subject"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, unique=True))
    event_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    event: str = Field(sa_column=sa.Column(sa.String(40), nullable=False))
    decision_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    subject: str = Field(
        sa_column=sa.Column(sa.String(36), nullable=False),
        description="The notice or case the step belongs to",
    )
    key_id: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    payload: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    content_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    prev_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    record_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class NoticeTemplate(SQLModel, table=True):
    """A version of a notice template: its exact text, kept so every notice can be traced (and
    rendered again) from the text it was rendered from."""

    __tablename__ = "notice_template"
    __table_args__ = (
        sa.UniqueConstraint("name", "version"),
        sa.UniqueConstraint("name", "sha256"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    first_used_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )


class AdverseNotice(SQLModel, table=True):
    """The notice of adverse action for one decision (at most one, never regenerated)."""

    __tablename__ = "adverse_notice"
    __table_args__ = (
        sa.Index("ix_adverse_notice_clock", "sent_at", "decision_made_at"),
        sa.Index("ix_adverse_notice_model_version", "model", "version"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    notice_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    decision_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    status: str = Field(
        sa_column=sa.Column(sa.String(16), nullable=False), description="issued or held"
    )
    model: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    decision_made_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    generated_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    generated_by: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    due_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    held_because: list[str] | None = Field(default=None, sa_column=sa.Column(JSONType))
    released_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    released_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    release_rationale: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    sent_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    sent_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    channel: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    template_name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    template_version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    template_sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    content: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    stability: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    html: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    html_sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    pdf: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    pdf_sha256: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    compute_ms: dict[str, float] = Field(
        default_factory=dict,
        sa_column=sa.Column(JSONType, nullable=False),
        description="Time to make it: reasons and their check, HTML, PDF",
    )


class AppealCase(SQLModel, table=True):
    """An applicant's appeal of one decision: open, under review, decided, closed. A decision
    has at most one case that is not closed (a partial unique index)."""

    __tablename__ = "appeal_case"
    __table_args__ = (
        sa.Index(
            "ux_appeal_case_one_open",
            "decision_id",
            unique=True,
            sqlite_where=sa.text("status != 'closed'"),
            postgresql_where=sa.text("status != 'closed'"),
        ),
        sa.Index("ix_appeal_case_decision_id", "decision_id"),
        sa.Index("ix_appeal_case_opened_by", "opened_by"),
        sa.Index("ix_appeal_case_model_version", "model", "version"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    case_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    decision_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    model: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    opened_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    opened_by: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    due_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    statement: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    overrides: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    evidence: list[dict[str, Any]] = Field(sa_column=sa.Column(JSONType, nullable=False))
    reviewer: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    assigned_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    assigned_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    outcome: str | None = Field(
        default=None,
        sa_column=sa.Column(sa.String(16)),
        description="upheld, overturned or referred",
    )
    rationale: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    decided_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    decided_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    human_label: str | None = Field(
        default=None,
        sa_column=sa.Column(sa.String(200)),
        description="An overturn: the decision a person made instead (the original is unchanged)",
    )
    review: dict[str, Any] | None = Field(
        default=None,
        sa_column=sa.Column(JSONType),
        description="What the reviewer was shown when deciding: the replay with the corrections",
    )
    closed_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    closed_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    letter: dict[str, Any] | None = Field(
        default=None,
        sa_column=sa.Column(JSONType),
        description="The applicant's letter, made once: when, by whom, the template and the "
        "sha256 of its HTML and PDF (kept after a retention purge)",
    )
    letter_html: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    letter_pdf: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
