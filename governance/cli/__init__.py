"""The ``govern`` command line.

It starts fast: its modules import at load only typer, rich, the settings, the database helpers
and the enums their options name (``Role``, ``Stage``). Each command imports what it uses when it
runs: ``govern --help`` loads none of scikit-learn, pandas, scipy, shap, alibi or DVC, and no
command loads the explainers or DVC unless it uses them (``tests/governance/test_cli_startup.py``;
``bench/cli_startup.py`` measures the time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.auth.models import Role
from core.config import get_settings
from core.db import make_engine, session_factory, transaction
from governance.cli import explain as explain_cli
from governance.cli import lineage as lineage_cli
from governance.cli.audit import audit_app
from governance.cli.rebuild import rebuild_command
from governance.cli.retention import retention_app

if TYPE_CHECKING:
    from core.config import Settings

app = typer.Typer(help="govern: lineage-first model governance and audit.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.command("train")(lineage_cli.train)
app.command("rebuild")(rebuild_command)
app.command("explain")(explain_cli.explain)
app.command("fairness")(explain_cli.fairness)
app.add_typer(lineage_cli.datasets_app, name="datasets")
app.add_typer(lineage_cli.models_app, name="models")
app.add_typer(lineage_cli.import_app, name="import")
app.add_typer(audit_app, name="audit")
app.add_typer(retention_app, name="retention")

out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Bring the database schema to the latest revision (idempotent)."""
    from core import migrate as migrations

    settings = get_settings()
    migrations.upgrade(settings, revision)
    engine = make_engine(settings)
    try:
        state = migrations.schema_state(engine)
    finally:
        engine.dispose()
    out.print(f"database {_display_url(settings)} is at {', '.join(sorted(state.current))}")


def _display_url(settings: Settings) -> str:
    from sqlalchemy import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (GOV_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (GOV_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (GOV_WORKERS).")] = None,
) -> None:
    """Serve the API. Refuses a database that is not at the migration head.

    With several workers, their metrics are written to a fresh directory (under the var dir) that
    /metrics aggregates, and that is removed when the server stops.
    """
    import uvicorn

    from core.bootstrap import ensure_admin_key
    from core.errors import is_connection_error
    from core.migrate import SchemaNotAtHead, ensure_at_head
    from serving.metrics import shared_across_workers

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    engine = make_engine(settings)
    try:
        ensure_at_head(engine)
        new_key = ensure_admin_key(settings, engine)
    except SchemaNotAtHead as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        raise _fail(f"cannot reach the database {_display_url(settings)}: {exc}") from None
    finally:
        engine.dispose()

    base = f"http://{host}:{port}"
    # Plain print: these lines are copied by people and parsed by scripts, so never wrap them.
    if new_key:
        print("First start: created an admin API key. It is shown only this once:")
        print(f"  {new_key}")
        print(f"  (saved to {settings.admin_key_file}, mode 0600)")
    else:
        print(f"admin key: see {settings.admin_key_file}, or: govern keys create --role admin")
    print(f"console:    {base}/console/  (sign in with your API key)")
    print(f"API docs:   {base}/docs")
    print(f"health:     {base}/healthz")
    print(f"readiness:  {base}/readyz", flush=True)
    workers = workers or settings.workers
    with shared_across_workers(settings.var_dir, workers):
        uvicorn.run(
            "governance.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level,
        )


@app.command()
def demo(
    decisions: Annotated[int, typer.Option(min=0, max=100_000, help="Decisions to send")] = 300,
) -> None:
    """Set up the demo (data, model, endpoint `credit`, decisions) if it is not there yet."""
    from governance.demo import run_demo

    if not run_demo(get_settings(), decisions):
        out.print("demo: already set up (endpoint credit exists)")


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="The key's role.")],
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expire after N days.")] = None,
) -> None:
    """Create a key and print it once. Only its hash is stored."""
    from core.auth import service as auth_service

    engine = make_engine(get_settings())
    try:
        with transaction(session_factory(engine)) as session:
            created = auth_service.create_key(
                session=session,
                name=name,
                role=role,
                created_by="cli",
                expires_in_days=expires_in_days,
            )
    finally:
        engine.dispose()
    err.print(f"created key {created.key_id} ({created.role.value}); it is shown only this once:")
    print(created.key)


@keys_app.command("list")
def keys_list(
    include_revoked: Annotated[
        bool, typer.Option("--all/--active", help="Show revoked keys too.")
    ] = True,
) -> None:
    """List keys (never their secrets)."""
    from core.auth import service as auth_service

    engine = make_engine(get_settings())
    try:
        with transaction(session_factory(engine)) as session:
            keys = [
                auth_service.to_public(k)
                for k in auth_service.list_keys(session=session, include_revoked=include_revoked)
            ]
    finally:
        engine.dispose()
    table = Table("key id", "name", "role", "created", "expires", "status")
    for key in keys:
        status = "active" if key.active else ("revoked" if key.revoked_at else "expired")
        table.add_row(
            key.key_id,
            key.name,
            key.role.value,
            key.created_at.isoformat(timespec="seconds"),
            key.expires_at.isoformat(timespec="seconds") if key.expires_at else "-",
            status,
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id shown by `keys list`.")],
) -> None:
    """Revoke a key. It stops working at once."""
    from core.auth import service as auth_service
    from core.errors import GovernanceError

    engine = make_engine(get_settings())
    try:
        with transaction(session_factory(engine)) as session:
            auth_service.revoke_key(session=session, key_id=key_id, revoked_by="cli")
    except GovernanceError as exc:
        raise _fail(exc.message, 2) from None
    finally:
        engine.dispose()
    out.print(f"revoked {key_id}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
