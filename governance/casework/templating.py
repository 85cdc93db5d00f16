"""Notice templates: an operator's folder of Jinja templates, each text used kept as a version.

The first time a template's text is used, it is stored (``notice_template``) with its sha256 and
the next version number for its name; a notice records the version and hash it was rendered from.
An edit to the file is a new version the next time a notice is made, and nothing else changes.
Templates render in Jinja's sandbox with autoescaping. PDFs come from WeasyPrint, which fetches
nothing: every URL in a template is refused, so a notice holds only what it was given.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from core.config import Settings
from core.errors import InvalidInput, ServiceUnavailable
from governance.casework.models import NoticeTemplate

SHIPPED = Path(__file__).parent / "notice_templates"
MAX_TEMPLATE_BYTES = 256 * 1024

_SANDBOX = SandboxedEnvironment(autoescape=True)


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def folder(settings: Settings) -> Path:
    return settings.notice_templates_dir or SHIPPED


def _read(settings: Settings, name: str) -> str:
    path = folder(settings) / name
    try:
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise InvalidInput.at(
                "GOV_NOTICE_TEMPLATES_DIR", f"{name} is over {MAX_TEMPLATE_BYTES} bytes"
            )
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ServiceUnavailable(
            f"the notice template {name} cannot be read from {folder(settings)}: {exc.strerror}"
        ) from exc


def current(session: Session, settings: Settings, name: str) -> NoticeTemplate:
    """The stored version of the template's text as it is now (stored first if it is new)."""
    text = _read(settings, name)
    digest = sha256(text)
    query = select(NoticeTemplate).where(
        NoticeTemplate.name == name, NoticeTemplate.sha256 == digest
    )
    found = session.exec(query).first()
    if found is not None:
        return found
    latest = session.exec(
        select(func.max(col(NoticeTemplate.version))).where(NoticeTemplate.name == name)
    ).one()
    row = NoticeTemplate(name=name, version=int(latest or 0) + 1, sha256=digest, text=text)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # stored concurrently by another request: use that one
        found = session.exec(query).first()
        if found is None:
            raise
        return found
    return row


def render_html(template: NoticeTemplate, **context: Any) -> str:
    try:
        return _SANDBOX.from_string(template.text).render(**context)
    except Exception as exc:  # an operator's template that does not render: say which
        raise ServiceUnavailable(
            f"the notice template {template.name} v{template.version} does not render: {exc}"
        ) from exc


def _refuse(url: str, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
    raise ValueError(f"a notice fetches nothing: {url}")


def render_pdf(html: str) -> bytes:
    """The notice as a PDF (text selectable), or 503 when WeasyPrint's system libraries (Pango)
    are missing: ``make install`` installs them."""
    try:
        import weasyprint  # loads Pango: only when a PDF is made
    except OSError as exc:
        raise ServiceUnavailable(
            "PDF notices need Pango, which is not installed here (make install installs it); "
            "the HTML notice is available"
        ) from exc
    pdf: bytes = weasyprint.HTML(string=html, url_fetcher=_refuse).write_pdf()
    return pdf
