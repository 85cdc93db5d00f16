"""Experiments: a champion against one or more challengers on an endpoint's live traffic.

The experiment row holds its current state; its configuration is versioned (``version``, with
every version in ``experiment_version``) and every change is also a record in the ``governance``
chain. The decisions an experiment covers are the endpoint's records with a seq above
``started_seq`` (and, once it ended, at or below ``ended_seq``): the decision log is the data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import JSONType, UTCDateTime


class Experiment(SQLModel, table=True):
    __tablename__ = "experiment"
    __table_args__ = (
        # One running experiment per endpoint: two would fight over its routes.
        sa.Index(
            "ux_experiment_running_endpoint",
            "endpoint",
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        ),
        sa.CheckConstraint("status IN ('running', 'ended')", name="status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    endpoint: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    config: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    started_seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    routing_before: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.Integer),
        description="The endpoint configuration (id) the experiment replaced",
    )
    routing: int = Field(
        sa_column=sa.Column(sa.Integer, nullable=False),
        description="The endpoint configuration (id) the experiment applied",
    )
    decided: dict[str, Any] | None = Field(
        default=None,
        sa_column=sa.Column(JSONType),
        description="The first report that reached a decision: the stopping rule's verdict "
        "stands from then on, and the figures that justified it",
    )
    decided_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    ended_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    ended_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    ended_seq: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))


class ExperimentVersion(SQLModel, table=True):
    """Every version of an experiment's configuration, as declared, with who and when."""

    __tablename__ = "experiment_version"
    __table_args__ = (sa.UniqueConstraint("experiment_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    config: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
