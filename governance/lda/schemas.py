"""What a search asks and what it reports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from core.responses import Body, Scalar, Strict
from governance.promotion.schemas import Step
from lineage.spec import NAME_PATTERN, ReductionConstraint

MAX_SEARCH = 60


class Base(Strict):
    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)


class Reduction(Strict):
    method: Literal["exponentiated_gradient"] = "exponentiated_gradient"
    constraint: ReductionConstraint = "demographic_parity"
    eps: float = Field(default=0.01, ge=0.001, le=0.5)


class Space(Strict):
    params: dict[str, list[Scalar]] = Field(
        default_factory=dict,
        max_length=5,
        description="Estimator parameters and the values to try, e.g. max_depth: [2, 3]",
    )
    drop_features: list[list[str]] = Field(
        default_factory=list,
        max_length=20,
        description="Feature subsets to leave out (a proxy, for example); the full set is "
        "always a candidate",
    )
    coarsen: list[dict[str, Annotated[int, Field(ge=2, le=50)]]] = Field(
        default_factory=list,
        max_length=20,
        description="Numeric features to coarsen, each with its number of quantile bins, e.g. "
        "{credit_history_months: 4}: the model sees only the bin",
    )
    reductions: list[Reduction] = Field(
        default_factory=list,
        max_length=5,
        description="fairlearn reductions to try: the estimator refitted under a fairness "
        "constraint on the search's protected attribute (which it reads at fit time only)",
    )


class SearchIn(Strict):
    base: Base
    space: Space
    attribute: str = Field(min_length=1, max_length=100, description="The protected attribute")
    accuracy_metric: Literal["roc_auc", "accuracy", "brier"] = "roc_auc"
    max_accuracy_loss: float = Field(
        default=0.01, ge=0, le=1, description="The accuracy an alternative may give up"
    )
    max_candidates: int = Field(default=50, ge=1, le=MAX_SEARCH)
    min_group_size: int = Field(default=30, ge=1, le=100_000)
    candidate_model: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="Default: the base model's name + -lda"
    )


class ChoiceIn(Strict):
    candidate: int = Field(ge=0)
    rationale: str = Field(min_length=10, max_length=4000)


class CandidateOut(Body):
    index: int
    params: dict[str, Scalar]
    dropped: list[str]
    coarsened: dict[str, int] = Field(default_factory=dict)
    mitigation: Reduction | None = None
    status: Literal["queued", "training", "trained", "failed"]
    run_id: int | None = None
    version: int | None = None
    error: dict[str, str] | str | None = None
    accuracy: float | None = None
    fairness: float | None = None
    fairness_ci95: list[float] | None = None
    four_fifths_verdict: str | None = None
    validation_rows: int | None = None
    selection_rates: dict[str, float] | None = None


class BaseFigures(Body):
    """The base version's own validation figures: what an alternative must improve on."""

    model: str
    version: int
    accuracy: float | None
    fairness: float | None
    fairness_ci95: list[float] | None
    four_fifths_verdict: str | None
    validation_rows: int | None
    selection_rates: dict[str, float] | None


class Report(Body):
    candidates: int
    trained: int
    base: BaseFigures
    pareto: list[int]
    less_discriminatory: list[int] = Field(
        description="Fairer than the base version, losing at most max_accuracy_loss; fairest first"
    )
    max_accuracy_loss: float
    accuracy_metric: str
    fairness_metric: str
    elapsed_s: float | None = None


class Progress(Body):
    done: int
    total: int


class Chosen(Body):
    candidate: int
    model: str
    version: int
    rationale: str
    by: str
    at: str
    on_frontier: bool
    less_discriminatory: bool


class SearchOut(Body):
    search_id: str
    status: Literal["running", "succeeded", "failed"]
    base: Base
    candidate_model: str
    request: SearchIn
    progress: Progress
    candidates: list[CandidateOut]
    report: Report | None
    error: str | None
    executor: str
    created_at: datetime
    created_by: str
    finished_at: datetime | None
    chosen: Chosen | None
    history: list[Step]
