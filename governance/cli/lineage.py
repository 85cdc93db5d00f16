"""Lineage commands: `govern train`, `govern datasets ...`, `govern models ...`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from core.config import get_settings
from core.db import make_engine, session_factory, transaction
from lineage.models import Stage

if TYPE_CHECKING:
    from core.errors import GovernanceError
    from lineage.input_schema import InputSchema

out = Console()
err = Console(stderr=True)

datasets_app = typer.Typer(help="Register and list DVC data versions.", no_args_is_help=True)
models_app = typer.Typer(
    help="Inspect models and move versions between stages.", no_args_is_help=True
)

ACTOR = "cli"


def _fail(exc: GovernanceError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc.message}")
    if isinstance(exc.details, list):
        for detail in exc.details:
            if isinstance(detail, dict) and detail.get("field") is not None:
                err.print(f"  {detail['field'] or '(spec)'}: {detail.get('message')}")
    elif exc.details:
        err.print(f"  {exc.details}")
    return typer.Exit(2)


def train(
    spec_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON spec")
    ],
) -> None:
    """Train from a spec, with progress, and print the model version and its lineage."""
    from core.errors import GovernanceError
    from lineage import registry, service
    from lineage.data_sources import DataPolicy
    from lineage.input_schema import InputSchema
    from lineage.models import RunStatus
    from lineage.runner import execute_run
    from lineage.spec import load_spec_text

    settings = get_settings()
    engine = make_engine(settings)
    factory = session_factory(engine)
    try:
        with transaction(factory) as session:
            run = service.create_run(
                session=session,
                spec_data=load_spec_text(spec_file.read_text(), source=str(spec_file)),
                actor=ACTOR,
                policy=DataPolicy.from_settings(settings),
                limits=service.cost_limits(settings),
            )
            run_id = run.id
        assert run_id is not None
        with Progress(
            TextColumn("[bold]run {task.fields[run]}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=err,
        ) as bar:
            task = bar.add_task("queued", total=1.0, run=run_id)
            execute_run(settings, run_id, lambda f, m: bar.update(task, completed=f, description=m))
        with transaction(factory) as session:
            run = service.get_run(session=session, run_id=run_id)
            if run.status != RunStatus.succeeded.value:
                err.print(f"[bold red]run {run_id} failed:[/] {(run.error or {}).get('message')}")
                for detail in (run.error or {}).get("details") or []:
                    if isinstance(detail, dict):
                        err.print(f"  {detail.get('field')}: {detail.get('message')}")
                raise typer.Exit(1)
            public = service.run_public(session, run)
            assert public.model_version is not None
            _model, version = registry.get_version(
                session=session, name=run.model_name, version=public.model_version
            )
            schema = InputSchema.from_document(version.input_schema)
            _print_summary(run.model_name, version.version, version.lineage, schema)
    except GovernanceError as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()


def _print_summary(
    name: str, version: int, lineage: dict[str, Any], schema: InputSchema | None = None
) -> None:
    """The version's lineage as a person reads it: how a score becomes a decision, the metrics
    with the train/validation gap, the proxies named, the missing-value policy."""
    from governance.compliance.card import decision_rule, missing_value_policy, overfitting

    data = lineage["dataset"]
    metrics = lineage["metrics"]["validation"]
    gate = lineage["gate"]
    table = Table(title=f"{name} v{version}", show_header=False)
    table.add_row("dataset", f"{data['name']} v{data['version']}  {data['repo']}:{data['path']}")
    table.add_row("data commit", f"{data['commit']}  (rev {data['rev']})")
    table.add_row(
        "data md5 / sha256", f"{data['md5']} / {data['sha256'][:16]}…  {data['row_count']} rows"
    )
    table.add_row("estimator", lineage["estimator"]["class"])
    table.add_row("seeds", ", ".join(f"{k}={v}" for k, v in lineage["seeds"].items()))
    if schema is not None:
        table.add_row("decision", Text(decision_rule(schema)["text"]))
    table.add_row(
        "validation",
        f"roc_auc={metrics['roc_auc']:.4f} accuracy={metrics['accuracy']:.4f} "
        f"brier={metrics['brier']:.4f}  (n={metrics['n']})",
    )
    table.add_row("overfitting", Text(overfitting(lineage["metrics"])["text"]))
    table.add_row(
        "gate", f"{gate['rule']}: {'passed' if gate['passed'] else 'FAILED'} ({gate['value']:.4f})"
    )
    proxies = lineage.get("proxies")
    if isinstance(proxies, dict) and proxies.get("summary"):
        table.add_row("proxies", Text("\n".join(proxies["summary"])))
    if schema is not None:
        gaps = [
            f"{f.name}: {missing_value_policy(f)}"
            for f in schema.features
            if f.missing_in_training or f.nullable
        ]
        table.add_row("missing values", Text("\n".join(gaps) or "none in training"))
        audited = [p for p in schema.protected if p.feature]
        for entry in audited:
            table.add_row(
                "protected input",
                Text(f"{entry.name}: {entry.justification or 'no justification'}"),
            )
    table.add_row("artifact sha256", lineage["artifact"]["sha256"])
    table.add_row("fingerprint", lineage["artifact"]["fingerprint"])
    env = lineage["environment"]
    table.add_row(
        "environment",
        f"Python {env['python']} on {env['platform']}; scikit-learn "
        f"{env['packages'].get('scikit-learn')}; {len(env['packages'])} packages recorded",
    )
    code = lineage["code"]
    table.add_row(
        "code", f"govern {code['govern_version']} @ {code['git_commit'] or 'unknown commit'}"
    )
    table.add_row(
        "duration",
        f"{lineage['timing']['duration_s']:.2f}s (fit {lineage['timing']['fit_s']:.2f}s)",
    )
    out.print(table)
    out.print(f"full lineage: GET /api/v1/models/{name}/versions/{version}/lineage")


@datasets_app.command("synth")
def datasets_synth(
    out_file: Annotated[Path, typer.Argument(dir_okay=False, help="CSV to write")],
    rows: Annotated[int, typer.Option(min=10, max=10_000_000)] = 5000,
    seed: Annotated[int, typer.Option(min=0)] = 1,
    bias: Annotated[float, typer.Option(min=0.0, max=1.0, help="Bias against sex=F")] = 0.0,
    shape: Annotated[
        str,
        typer.Option(
            help="demo: the demo's clean columns; lender: a lender's export, with category "
            "codes, integer codes, yes/no columns, missing values and a small group "
            "(lineage.loanbook; --bias does not apply)"
        ),
    ] = "demo",
) -> None:
    """Write a seeded synthetic loan book as CSV."""
    from lineage.loanbook import generate_loan_book
    from lineage.synthetic import generate_loans

    if shape not in {"demo", "lender"}:
        raise typer.BadParameter("demo or lender", param_hint="--shape")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    if shape == "lender":
        generate_loan_book(rows, seed=seed).to_csv(out_file, index=False)
        out.print(f"wrote {rows} rows shaped like a lender's export to {out_file} (seed {seed})")
        return
    generate_loans(rows, seed=seed, bias=bias).to_csv(out_file, index=False)
    out.print(f"wrote {rows} rows to {out_file} (seed {seed}, bias {bias})")


@datasets_app.command("register")
def datasets_register(
    name: Annotated[str, typer.Option(help="Dataset name")],
    repo: Annotated[str, typer.Option(help="Absolute path or git URL of the DVC repo")],
    path: Annotated[str, typer.Option(help="File inside the repo")],
    rev: Annotated[str, typer.Option(help="Git revision")] = "HEAD",
) -> None:
    """Register one version of a DVC-tracked CSV or Parquet file."""
    from core.errors import GovernanceError
    from lineage import service
    from lineage.data_sources import DataPolicy

    settings = get_settings()
    engine = make_engine(settings)
    try:
        with transaction(session_factory(engine)) as session:
            dataset, created = service.register_dataset(
                session=session,
                name=name,
                repo=repo,
                path=path,
                rev=rev,
                actor=ACTOR,
                policy=DataPolicy.from_settings(settings),
            )
            public = service.dataset_public(dataset)
    except GovernanceError as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()
    verb = "registered" if created else "already registered as"
    out.print(
        f"{verb} dataset id {public.id}: {public.name} v{public.version} at {public.commit[:12]} "
        f"(md5 {public.md5}, {public.row_count} rows, {len(public.columns)} columns)"
    )


@datasets_app.command("list")
def datasets_list(limit: Annotated[int, typer.Option(min=1, max=500)] = 100) -> None:
    """List registered data versions."""
    from core.pagination import Page
    from lineage import service

    engine = make_engine(get_settings())
    try:
        with transaction(session_factory(engine)) as session:
            rows = [
                service.dataset_public(d)
                for d in service.list_datasets(session=session, page=Page(limit=limit))
            ]
    finally:
        engine.dispose()
    table = Table("id", "name", "version", "path", "commit", "md5", "rows")
    for d in rows:
        table.add_row(
            str(d.id), d.name, str(d.version), d.path, d.commit[:12], d.md5, str(d.row_count)
        )
    out.print(table)


@models_app.command("list")
def models_list() -> None:
    """List models and their versions with stages."""
    from core.pagination import Page
    from lineage import registry

    engine = make_engine(get_settings())
    try:
        with transaction(session_factory(engine)) as session:
            models = [
                registry.model_public(session, m)
                for m in registry.list_models(session=session, page=Page(limit=500))
            ]
    finally:
        engine.dispose()
    table = Table("model", "version", "stage", "gate", "fingerprint", "created")
    for model in models:
        for v in model.versions:
            table.add_row(
                model.name,
                str(v.version),
                v.stage.value,
                "passed" if v.gate_passed else "failed",
                v.fingerprint[:16],
                v.created_at.isoformat(timespec="seconds"),
            )
    out.print(table)


@models_app.command("stage")
def models_stage(
    name: str,
    version: int,
    stage: Annotated[Stage, typer.Argument(help="staging, production or archived")],
    reason: Annotated[str, typer.Option(help="Why; kept in the stage history")],
) -> None:
    """Move a model version to another stage."""
    from core.errors import GovernanceError
    from lineage import registry

    engine = make_engine(get_settings())
    try:
        with transaction(session_factory(engine)) as session:
            transition = registry.change_stage(
                session=session, name=name, version=version, stage=stage, reason=reason, actor=ACTOR
            )
            moved = f"{name} v{version}: {transition.from_stage} -> {transition.to_stage}"
    except GovernanceError as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()
    out.print(moved)


import_app = typer.Typer(help="Import models registered elsewhere.", no_args_is_help=True)


@import_app.command("mlflow")
def import_mlflow(
    tracking_uri: Annotated[
        str, typer.Option(help="The MLflow tracking server, e.g. http://host:5000")
    ],
    model: Annotated[str, typer.Option(help="The MLflow registered model")],
    version: Annotated[int, typer.Option(min=1, help="The MLflow model version")],
    describe: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="YAML: target, and optionally features, protected, decision, gate, dataset, seeds",
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="The govern model name (default: MLflow's)")
    ] = None,
) -> None:
    """Import an MLflow model version (sklearn, xgboost or lightgbm flavour) with its run's
    params, metrics, tags, dataset inputs, git commit and environment in the lineage."""
    import yaml

    from core.errors import GovernanceError, InvalidInput
    from lineage import mlflow_import
    from lineage.artifacts import ArtifactStore
    from lineage.data_sources import DataPolicy
    from lineage.input_schema import InputSchema

    settings = get_settings()
    engine = make_engine(settings)
    factory = session_factory(engine)
    try:
        try:
            document = yaml.safe_load(describe.read_text())
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{describe} is not YAML: {exc}") from None
        described = mlflow_import.parse_description(document)
        target = mlflow_import.govern_name(model, name)
        with err.status(f"reading {model} v{version} from {mlflow_import.redacted(tracking_uri)}"):
            fetched = mlflow_import.fetch(
                tracking_uri, model, version, settings.max_artifact_bytes, settings.mlflow_timeout_s
            )
        with (
            err.status("verifying the data, evaluating and registering"),
            transaction(factory) as session,
        ):
            _registered, created = mlflow_import.import_version(
                session=session,
                store=ArtifactStore(settings.artifacts),
                fetched=fetched,
                name=target,
                described=described,
                actor=ACTOR,
                max_unpacked=4 * settings.max_artifact_bytes,
                policy=DataPolicy.from_settings(settings),
            )
            schema = InputSchema.from_document(created.input_schema)
            record = created.lineage["mlflow"]
            out.print(
                f"imported MLflow {model} v{version} (run {record['run_id']}, "
                f"{record['flavour']} flavour, {record['artifact_format']}) as {target} "
                f"v{created.version}"
            )
            _print_import(target, created.version, created.lineage, schema)
    except GovernanceError as exc:
        raise _fail(exc) from None
    finally:
        engine.dispose()


def _print_import(name: str, version: int, lineage: dict[str, Any], schema: InputSchema) -> None:
    """An imported version's lineage as a person reads it: the MLflow run, the data and
    whether it is proven, and the figures govern measured itself."""
    from governance.compliance.card import decision_rule

    record = lineage["mlflow"]
    data = lineage["dataset"]
    check = record["data_verification"]
    metrics = lineage["metrics"]["all_rows"]
    gate = lineage["gate"]
    table = Table(title=f"{name} v{version}", show_header=False)
    table.add_row("mlflow", f"{record['model']} v{record['version']}  {record['model_uri']}")
    table.add_row("run", f"{record['run_id']} ({record['run_name']}, by {record['user']})")
    table.add_row("git commit", str(record.get("git_commit") or "not recorded by the run"))
    table.add_row(
        "model",
        f"{record['model_class']} ({record['flavour']} flavour, {record['artifact_format']})",
    )
    table.add_row(
        "params",
        f"{len(record['params'])} recorded; seeds "
        + ", ".join(f"{k}={v}" for k, v in (lineage["seeds"] or {}).items()),
    )
    table.add_row(
        "mlflow metrics", ", ".join(f"{k}={v}" for k, v in record["metrics"].items()) or "none"
    )
    table.add_row(
        "dataset",
        f"{data['name']} v{data['version']}  {data['repo']}:{data['path']}"
        f"  @ {data['commit'][:12]}",
    )
    table.add_row("data", Text(f"{check['status']}: {check['reason']}"))
    table.add_row("decision", Text(decision_rule(schema)["text"]))
    table.add_row(
        "scored by govern",
        f"roc_auc={metrics['roc_auc']:.4f} accuracy={metrics['accuracy']:.4f} "
        f"brier={metrics['brier']:.4f}  (n={metrics['n']})",
    )
    table.add_row("", Text(lineage["metrics"]["note"]))
    value = "" if gate["value"] is None else f" ({gate['value']:.4f})"
    table.add_row("gate", f"{gate['rule']}: {'passed' if gate['passed'] else 'FAILED'}{value}")
    env = lineage["environment"]
    table.add_row(
        "environment",
        f"Python {env.get('python')}; {env.get('library_version')}; "
        f"{len(env.get('requirements') or [])} requirements recorded by MLflow",
    )
    table.add_row("artifact sha256", lineage["artifact"]["sha256"])
    out.print(table)
    out.print(f"full lineage: GET /api/v1/models/{name}/versions/{version}/lineage")
