"""Finding and exporting logged decisions: filters, keyset pages, CSV and Parquet streams.

Pages are keyed on the chain sequence number ``seq``. Records are appended under the chain
head's lock, so ``seq`` grows in commit order: a page never skips a record that commits while
someone pages, and never repeats one. Exports walk the same query in chunks of
``EXPORT_CHUNK`` rows, each chunk in its own short transaction, so memory stays constant
whatever the number of rows.

A CSV export is opened in spreadsheets, and a caller chooses the subject id (and a model's labels
come from its training data): a text cell that starts like a formula is prefixed with a single
quote, as OWASP recommends, so that it is shown rather than run. Numbers stay numbers, and
Parquet stays raw.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from core.db import transaction
from lineage.input_schema import InputSchema
from lineage.models import ModelVersion, RegisteredModel
from serving.models import DecisionOutcome, DecisionRecord

DECISIONS: sa.Table = DecisionRecord.__table__  # type: ignore[attr-defined]
OUTCOMES: sa.Table = DecisionOutcome.__table__  # type: ignore[attr-defined]
EXPORT_CHUNK = 5000
STREAM_PIECE = 256 * 1024
KINDS = ("decision", "shadow", "rejected")
# A spreadsheet takes a cell that starts with one of these as a formula (or strips the tab/CR).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The same rule in PostgreSQL's regular expressions ('-' last in the bracket, so it is literal).
_FORMULA_PATTERN = "^([=+@\t\r-])"

COLUMNS = (
    "decision_id",
    "seq",
    "kind",
    "created_at",
    "endpoint",
    "model",
    "version",
    "route",
    "subject_id",
    "label",
    "score",
    "outlier_score",
    "is_outlier",
    "key_id",
    "parent_decision_id",
    "record_hash",
    "purged",
    "outcome",
    "outcome_observed_at",
    "features",
    "context",
)
# The latest recorded outcome of each decision (a correction is a later row), read by one index
# seek per row (ix_decision_outcome_decision_id_id).
OUTCOME_COLUMNS = {"outcome": OUTCOMES.c.outcome, "outcome_observed_at": OUTCOMES.c.observed_at}
NUMERIC_COLUMNS = frozenset({"seq", "version", "score", "outlier_score"})


@dataclass(frozen=True)
class DecisionFilter:
    endpoint: str | None = None
    model: str | None = None
    version: int | None = None
    route: str | None = None
    subject_id: str | None = None
    label: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    outlier: bool | None = None
    has_outcome: bool | None = None
    kind: str = "decision"

    def params(self) -> dict[str, Any]:
        """The filters that were set, as text: what the access trail records."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in self.__dict__.items()
            if value is not None
        }

    def conditions(self) -> list[Any]:
        c = DECISIONS.c
        where: list[Any] = [c.kind == self.kind]
        for name in ("endpoint", "model", "version", "route", "subject_id", "label"):
            value = getattr(self, name)
            if value is not None:
                where.append(c[name] == value)
        if self.since is not None:
            where.append(c.created_at >= self.since)
        if self.until is not None:
            where.append(c.created_at < self.until)
        if self.outlier is not None:
            where.append(c.is_outlier.is_(self.outlier))
        if self.has_outcome is not None:
            exists = sa.exists().where(OUTCOMES.c.decision_id == c.decision_id)
            where.append(exists if self.has_outcome else ~exists)
        return where


# A record commits within this long of its created_at (predict stamps created_at, then waits
# for the log's commit, which gives up long before this).
COMMIT_LAG = timedelta(minutes=10)


def seq_window(session: Session, filters: DecisionFilter) -> tuple[int | None, int | None]:
    """Exclusive seq bounds that contain every record of the time window, from two index seeks.

    seq follows commit order and created_at is stamped before the commit, so a record made
    more than COMMIT_LAG before ``since`` committed before any record of the window, and one
    made COMMIT_LAG after ``until`` committed after all of them. With these bounds, a page of a
    month walks the seq index over that month instead of sorting the month or scanning from the
    start of the log.
    """
    c = DECISIONS.c
    low = high = None
    if filters.since is not None:
        low = session.execute(
            sa.select(c.seq)
            .where(c.created_at < filters.since - COMMIT_LAG)
            .order_by(c.created_at.desc())
            .limit(1)
        ).scalar()
    if filters.until is not None:
        high = session.execute(
            sa.select(c.seq)
            .where(c.created_at >= filters.until + COMMIT_LAG)
            .order_by(c.created_at)
            .limit(1)
        ).scalar()
    return low, high


def latest_outcome(name: str) -> Any:
    c = DECISIONS.c
    return (
        sa.select(OUTCOME_COLUMNS[name])
        .where(OUTCOMES.c.decision_id == c.decision_id)
        .order_by(OUTCOMES.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _select(
    filters: DecisionFilter,
    after: int | None,
    limit: int | None,
    as_text: bool = False,
    window: tuple[int | None, int | None] = (None, None),
    columns: list[Any] | None = None,
) -> Any:
    """The query behind pages and exports, in log order. ``as_text``: features and context as
    the database's JSON text, for exports (decoding and encoding them again cost more than the
    rest of an export row). ``columns`` replaces the selected columns (one per COLUMNS name)."""
    c = DECISIONS.c
    if columns is None:
        columns = [
            sa.cast(c[name], sa.Text).label(name)
            if as_text and name in {"features", "context"}
            else latest_outcome(name).label(name)
            if name in OUTCOME_COLUMNS
            else c[name]
            for name in COLUMNS
            if name != "purged"
        ] + [(c.payload.is_(None)).label("purged")]
    query = sa.select(*columns).where(*filters.conditions()).order_by(c.seq).limit(limit)
    low, high = window
    after = max(after, low) if after is not None and low is not None else (after or low)
    if after is not None:
        query = query.where(c.seq > after)
    if high is not None:
        query = query.where(c.seq < high)
    return query


def _row(mapping: Any) -> dict[str, Any]:
    row = {name: mapping[name] for name in COLUMNS}
    row["purged"] = bool(row["purged"])
    if row["purged"]:
        row["features"] = row["context"] = None
    return row


def page(
    session: Session, filters: DecisionFilter, limit: int, cursor: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """One page, in log order, and the cursor for the next (None at the end). Each label is the
    model's class as the decision record has it (the code 0, not the text "0")."""
    window = seq_window(session, filters)
    rows = [
        _row(r._mapping) for r in session.execute(_select(filters, cursor, limit, window=window))
    ]
    classes = _classes(session, {(r["model"], r["version"]) for r in rows if r["model"]})
    for row in rows:
        known = classes.get((row["model"], row["version"]), {})
        row["label"] = known.get(row["label"], row["label"])
    return rows, rows[-1]["seq"] if len(rows) == limit else None


def _classes(
    session: Session, versions: set[tuple[str, int]]
) -> dict[tuple[str, int], dict[str, Any]]:
    """For each (model, version), its classes by the text the label column holds."""
    if not versions:
        return {}
    models: sa.Table = RegisteredModel.__table__  # type: ignore[attr-defined]
    found: sa.Table = ModelVersion.__table__  # type: ignore[attr-defined]
    query = (
        sa.select(models.c.name, found.c.version, found.c.input_schema)
        .join(models, models.c.id == found.c.model_id)
        .where(sa.tuple_(models.c.name, found.c.version).in_(sorted(versions)))
    )
    return {
        (name, version): {str(c): c for c in InputSchema.from_document(schema).classes}
        for name, version, schema in session.execute(query)
    }


def walk(
    sessions: sessionmaker[Session], filters: DecisionFilter
) -> Iterator[list[dict[str, Any]]]:
    """Every matching row, a chunk at a time, each chunk read in its own transaction."""
    after: int | None = None
    with transaction(sessions) as session:
        window = seq_window(session, filters)
    while True:
        with transaction(sessions) as session:
            query = _select(filters, after, EXPORT_CHUNK, as_text=True, window=window)
            rows = [_row(r._mapping) for r in session.execute(query)]
        if not rows:
            return
        yield rows
        if len(rows) < EXPORT_CHUNK:
            return
        after = rows[-1]["seq"]


def neutralise(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, prefixed with a single quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def postgres_csv(
    sessions: sessionmaker[Session], filters: DecisionFilter, counter: list[int]
) -> Iterator[bytes]:
    """The CSV export on PostgreSQL: the same query run by ``COPY ... TO STDOUT``, streamed as
    the server writes it, with every value formatted in SQL exactly as ``csv_chunks`` writes it,
    formula-like text neutralised the same way. Parameters are bound by psycopg; one
    transaction, so the export is one consistent snapshot."""
    c = DECISIONS.c
    purged = c.payload.is_(None)
    pattern = sa.bindparam("formula_pattern", _FORMULA_PATTERN, type_=sa.Text)
    quoted = sa.bindparam("formula_quoted", "'\\1", type_=sa.Text)

    def neutralised(expression: Any) -> Any:
        # One pass over the value: a CASE would compute a JSON column's text three times.
        return sa.func.regexp_replace(expression, pattern, quoted, type_=sa.Text)

    def flag(expression: Any) -> Any:
        return sa.case((expression.is_(True), "True"), (expression.is_(False), "False"))

    def as_text(name: str) -> Any:
        if name in {"created_at", "outcome_observed_at"}:
            moment = c.created_at if name == "created_at" else latest_outcome(name)
            stamp = sa.func.to_char(sa.func.timezone("UTC", moment), 'YYYY-MM-DD"T"HH24:MI:SS.US')
            return (stamp + "+00:00").label(name)
        if name == "outcome":
            return neutralised(latest_outcome(name)).label(name)
        if name == "is_outlier":
            return flag(c.is_outlier).label(name)
        if name == "purged":
            return flag(purged).label(name)
        if name in {"features", "context"}:
            text = sa.case((purged, None), else_=sa.cast(c[name], sa.Text))
            return neutralised(text).label(name)
        if name in NUMERIC_COLUMNS:
            return c[name]
        return neutralised(c[name]).label(name)

    with transaction(sessions) as session:
        query = _select(
            filters,
            None,
            None,
            window=seq_window(session, filters),
            columns=[as_text(name) for name in COLUMNS],
        )
        compiled = query.compile(dialect=session.get_bind().dialect)
        driver = session.connection().connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            statement = f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, HEADER true)"
            with cursor.copy(statement, compiled.params) as copy:
                # The server sends one message per row: hand them on in larger pieces.
                pending: list[bytes] = []
                size = 0
                for block in copy:
                    pending.append(bytes(block))
                    size += len(block)
                    if size >= STREAM_PIECE:
                        yield b"".join(pending)
                        pending.clear()
                        size = 0
                if pending:
                    yield b"".join(pending)
            counter[0] = max(cursor.rowcount, 0)


def _text(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def csv_chunks(chunks: Iterator[list[dict[str, Any]]], counter: list[int]) -> Iterator[bytes]:
    """CSV with a header row; features and context as JSON text; formula-like text neutralised.
    Counts rows in ``counter``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    # Python 3.11's writer quotes a field for the characters of its line terminator only, so a
    # lone CR in a subject id went out unquoted: a spreadsheet ends the row there, and what
    # follows starts a new row, where it can be a formula. A row holding a CR is written with
    # a CRLF terminator, which quotes the field (as COPY does), then ended with "\n" like the rest.
    cr_writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue().encode()
    at = COLUMNS.index("created_at")
    observed = COLUMNS.index("outcome_observed_at")
    json_columns = [COLUMNS.index("features"), COLUMNS.index("context")]
    for rows in chunks:
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            values = [row[name] for name in COLUMNS]
            values[at] = values[at].isoformat()
            if values[observed] is not None:
                values[observed] = values[observed].isoformat()
            for i in json_columns:
                if not isinstance(values[i], str | None):
                    values[i] = _text(values[i])
            values = [neutralise(value) for value in values]
            if any(isinstance(value, str) and "\r" in value for value in values):
                cr_writer.writerow(values)
                buffer.seek(buffer.tell() - 2)
                buffer.truncate()
                buffer.write("\n")
            else:
                writer.writerow(values)
        counter[0] += len(rows)
        yield buffer.getvalue().encode()


def parquet_chunks(chunks: Iterator[list[dict[str, Any]]], counter: list[int]) -> Iterator[bytes]:
    """Parquet, one row group per chunk, streamed as it is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("decision_id", pa.string()),
            ("seq", pa.int64()),
            ("kind", pa.string()),
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("endpoint", pa.string()),
            ("model", pa.string()),
            ("version", pa.int64()),
            ("route", pa.string()),
            ("subject_id", pa.string()),
            ("label", pa.string()),
            ("score", pa.float64()),
            ("outlier_score", pa.float64()),
            ("is_outlier", pa.bool_()),
            ("key_id", pa.string()),
            ("parent_decision_id", pa.string()),
            ("record_hash", pa.string()),
            ("purged", pa.bool_()),
            ("outcome", pa.string()),
            ("outcome_observed_at", pa.timestamp("us", tz="UTC")),
            ("features", pa.string()),
            ("context", pa.string()),
        ]
    )
    sink = _Sink()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema)
    try:
        for rows in chunks:
            columns = {
                name: [_text(r[name]) if name in {"features", "context"} else r[name] for r in rows]
                for name in COLUMNS
            }
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
            counter[0] += len(rows)
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()


class _Sink:
    """A write-only file that hands over what was written so far; it counts its own position,
    so the Parquet footer's offsets stay right while the bytes leave in pieces."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data
