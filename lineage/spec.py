"""The training spec: what to train, on which data version, how, and with which seeds.

A spec is YAML or JSON. It is validated completely before anything runs, and every error names
its field (``features.2.bounds``). ``resolve`` fills in every default, so the stored spec says
exactly what ran.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.errors import InvalidInput, field_list, validation_details
from core.text import find_bad_text

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"

# Estimators a spec may name. Anything else is refused before import: a spec is data, and a class
# path from data must never reach an arbitrary callable.
ESTIMATORS: dict[str, str] = {
    "sklearn.ensemble.HistGradientBoostingClassifier": "tree",
    "sklearn.ensemble.GradientBoostingClassifier": "tree",
    "sklearn.ensemble.RandomForestClassifier": "tree",
    "sklearn.ensemble.ExtraTreesClassifier": "tree",
    "sklearn.tree.DecisionTreeClassifier": "tree",
    "sklearn.linear_model.LogisticRegression": "linear",
    "xgboost.XGBClassifier": "tree",
    "lightgbm.LGBMClassifier": "tree",
}

# What makes a gradient-boosting library's fit the same on every run, set in the pipeline unless
# the spec sets it (and recorded with the estimator's parameters): a fixed thread count, and
# LightGBM's deterministic mode (which needs a fixed histogram layout). The seed is always
# ``seeds.estimator``.
DETERMINISTIC: dict[str, dict[str, Any]] = {
    "xgboost.XGBClassifier": {"n_jobs": 1, "tree_method": "hist"},
    "lightgbm.LGBMClassifier": {
        "n_jobs": 1,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    },
}
# Parameters a library takes beyond ``get_params()`` (LightGBM passes its own through **kwargs).
EXTRA_PARAMS: dict[str, set[str]] = {
    "lightgbm.LGBMClassifier": {
        "deterministic",
        "force_row_wise",
        "force_col_wise",
        "verbose",
        "max_bin",
        "min_data_in_bin",
        "extra_trees",
        "path_smooth",
        "monotone_constraints",
    },
}


def import_estimator(class_path: str) -> type[Any]:
    """Import an allowlisted estimator class. Never called with a path outside the allowlist."""
    if class_path not in ESTIMATORS:
        raise ValueError(f"{class_path!r} is not an allowed estimator")
    import importlib

    module_name, class_name = class_path.rsplit(".", 1)
    cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return cls


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureType(StrEnum):
    numeric = "numeric"
    categorical = "categorical"


class Direction(StrEnum):
    increase = "increase"
    decrease = "decrease"
    any = "any"


# A category is its value as the data has it: a string, or an integer code (1..4 in a CSV).
Category = StrictStr | StrictInt
YAML_BOOLEAN_HINT = (
    "YAML reads unquoted yes/no/on/off/true/false as booleans: quote the value, e.g. 'yes'"
)


def category_text(value: Any) -> str:
    """A category's identity as text: ``2``, ``2.0`` and ``"2"`` are the same code."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _no_booleans(value: Any, where: str) -> None:
    """A YAML boolean where a category was meant is refused with the hint to quote it."""
    if isinstance(value, bool):
        raise ValueError(f"{where} holds the boolean {value}; {YAML_BOOLEAN_HINT}")


def _category_keys(value: Any, where: str) -> Any:
    """Mappings keyed by category (labels, reasons, transitions) take YAML's integer keys too."""
    if not isinstance(value, dict):
        return value
    for key in value:
        _no_booleans(key, where)
    return {category_text(k): v for k, v in value.items()}


class DatasetRef(Strict):
    """Either a registered dataset version by id, or a DVC location registered on first use."""

    id: int | None = Field(default=None, ge=1)
    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    repo: str | None = Field(default=None, min_length=1, max_length=2000)
    path: str | None = Field(default=None, min_length=1, max_length=1000)
    rev: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        location = (self.name, self.repo, self.path, self.rev)
        if self.id is None and any(v is None for v in location):
            raise ValueError("give either id, or all of name, repo, path and rev")
        if self.id is not None and any(v is not None for v in location):
            raise ValueError("give either id, or name/repo/path/rev, not both")
        return self


class Target(Strict):
    column: str = Field(min_length=1)
    positive_class: Any = Field(description="The class whose probability the model scores.")
    favourable_class: Any = Field(
        default=None,
        description="The class that is good for the subject (e.g. 'repaid'). "
        "Defaults to the positive class.",
    )

    @field_validator("positive_class", "favourable_class")
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | int | bool):
            raise ValueError("must be a string, integer or boolean label")
        return value


class Feature(Strict):
    name: str = Field(min_length=1, max_length=200)
    type: FeatureType
    description: str | None = Field(
        default=None,
        max_length=300,
        description="Plain-language text used in adverse-action reasons.",
    )
    bounds: tuple[float, float] | None = None
    immutable: bool = False
    direction: Direction = Direction.any
    categories: list[Category] | None = Field(
        default=None,
        description="Allowed categories, as the data has them (strings or integer codes); "
        "learned from the training data if unset.",
    )
    unseen: Literal["reject", "ignore"] = Field(
        default="reject",
        description="What predict does with a category the model never saw.",
    )
    nullable: bool | None = Field(
        default=None,
        description="Whether predict accepts null (handled as training handled a missing value); "
        "unset: true when the training data has missing values.",
    )
    labels: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None,
        description="A human label per category code, shown beside the code in every output.",
    )
    reasons: dict[str, Annotated[str, Field(min_length=1, max_length=300)]] | None = Field(
        default=None,
        description="Adverse-action reason text: per category code for a categorical feature, "
        "or for 'high' and 'low' values of a numeric one. Falls back to the description.",
    )
    order: list[Category] | None = Field(
        default=None,
        description="Categorical only: the categories in order; with direction, the only way "
        "a counterfactual may move along it.",
    )
    transitions: dict[str, list[Category]] | None = Field(
        default=None,
        description="Categorical only: from each code, the codes a counterfactual may change "
        "it to. A code not listed may not change.",
    )

    @field_validator("categories", "order", mode="before")
    @classmethod
    def _plain_categories(cls, value: Any) -> Any:
        if isinstance(value, list):
            for item in value:
                _no_booleans(item, "a category")
        return value

    @field_validator("labels", "reasons", mode="before")
    @classmethod
    def _keys_as_codes(cls, value: Any) -> Any:
        return _category_keys(value, "a category key")

    @field_validator("transitions", mode="before")
    @classmethod
    def _transition_codes(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for targets in value.values():
                for item in targets if isinstance(targets, list) else []:
                    _no_booleans(item, "a category")
        return _category_keys(value, "a category key")

    @field_validator("bounds")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None:
            low, high = value
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError("bounds must be finite numbers")
            if low > high:
                raise ValueError(f"lower bound {low} is above upper bound {high}")
        return value

    @model_validator(mode="after")
    def _type_rules(self) -> Self:
        if self.type is FeatureType.categorical:
            if self.bounds is not None:
                raise ValueError("bounds apply to numeric features only")
            if self.direction is not Direction.any and self.order is None:
                raise ValueError(
                    "direction applies to a categorical feature only with an order of its "
                    "categories"
                )
            self._check_codes()
        else:
            for name in ("categories", "labels", "order", "transitions"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} apply to categorical features only")
            unknown = sorted(set(self.reasons or {}) - {"high", "low"})
            if unknown:
                raise ValueError(
                    f"reasons of a numeric feature are for 'high' and 'low' values, not {unknown}"
                )
        return self

    def _check_codes(self) -> None:
        """Codes named in labels, reasons, order and transitions are known categories, when
        the categories are declared (otherwise they are checked against the data)."""
        if self.order is not None:
            texts = [category_text(c) for c in self.order]
            if len(set(texts)) != len(texts):
                raise ValueError("order names a category twice")
        if self.categories is None:
            return
        unknown = sorted(set(self.codes_named()) - {category_text(c) for c in self.categories})
        if unknown:
            raise ValueError(f"codes {unknown} are not among the categories")

    def codes_named(self) -> list[str]:
        codes = [*(self.labels or {}), *(self.reasons or {})]
        codes += [category_text(c) for c in self.order or []]
        for source, targets in (self.transitions or {}).items():
            codes += [source, *(category_text(t) for t in targets)]
        return codes


class Protected(Strict):
    name: str = Field(min_length=1, max_length=200)
    type: FeatureType = FeatureType.categorical
    bins: list[float] | None = Field(
        default=None, description="Bin edges for a numeric attribute, e.g. age."
    )
    values: list[Category] | None = Field(
        default=None,
        description="Categorical only: the values predict accepts in the context; learned from "
        "the training data if unset. Any other value is refused with a 422.",
    )
    labels: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    required: bool = Field(
        default=False,
        description="Whether predict refuses a decision without this attribute in its context. "
        "Unset, a decision without it is counted as 'not provided'.",
    )
    justification: str | None = Field(
        default=None,
        min_length=20,
        max_length=2000,
        description="Required when the attribute is also a model feature: why the model may "
        "use it (e.g. age in an empirically derived scorecard under Reg B, 12 CFR 1002.6(b)(2)).",
    )

    @field_validator("values", mode="before")
    @classmethod
    def _plain_values(cls, value: Any) -> Any:
        if isinstance(value, list):
            for item in value:
                _no_booleans(item, "a value")
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _label_keys(cls, value: Any) -> Any:
        return _category_keys(value, "a value key")

    @field_validator("bins")
    @classmethod
    def _increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            if len(value) < 2:
                raise ValueError("at least two bin edges are needed")
            if any(b <= a for a, b in itertools.pairwise(value)):
                raise ValueError("bin edges must be strictly increasing")
        return value

    @model_validator(mode="after")
    def _type_rules(self) -> Self:
        if self.type is FeatureType.numeric and self.values is not None:
            raise ValueError("values apply to a categorical attribute; give bins for a numeric one")
        if self.type is FeatureType.categorical and self.bins is not None:
            raise ValueError("bins apply to a numeric attribute")
        if self.values is not None and self.labels:
            unknown = sorted(set(self.labels) - {category_text(v) for v in self.values})
            if unknown:
                raise ValueError(f"labels name values {unknown} that are not among the values")
        return self


CONSTRAINT = re.compile(r"^\s*([^\s<>=]+)\s*(>=|<=)\s*([^\s<>=]+)\s*$")


class Constraint(Strict):
    """``a >= b`` between two numeric features: what the training data shows always holds, and
    what a counterfactual must keep (payments never below housing costs)."""

    left: str
    op: Literal[">=", "<="]
    right: str

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = CONSTRAINT.match(value)
            if match is None:
                raise ValueError(f"{value!r}: write it as 'feature_a >= feature_b' (or <=)")
            return {"left": match[1], "op": match[2], "right": match[3]}
        return value

    @property
    def text(self) -> str:
        return f"{self.left} {self.op} {self.right}"


ContextKey = Annotated[str, Field(min_length=1, max_length=200)]
MAX_PUBLIC_CONTEXT = 100  # as many keys as a decision's context may hold


def check_public_context(keys: list[str], protected: Iterable[Protected]) -> list[str]:
    """Public context keys are named once each, and a protected attribute is never one."""
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"duplicate keys {duplicates}")
    overlap = sorted(set(keys) & {p.name for p in protected})
    if overlap:
        raise ValueError(
            f"protected attributes are never public context, but {overlap} are declared both"
        )
    return keys


class NumericTransform(Strict):
    impute: Literal["mean", "median", "most_frequent", "constant", "none"] = "median"
    fill_value: float | None = None
    bins: int | None = Field(
        default=None,
        ge=2,
        le=50,
        description="Coarsen the feature into this many quantile bins (learned from the training "
        "rows) before scaling: the model then sees only which bin a value falls in. Needs "
        "imputation, since a missing value has no bin.",
    )
    scale: Literal["standard", "minmax", "robust", "none"] = "standard"

    @model_validator(mode="after")
    def _bins_need_values(self) -> Self:
        if self.bins is not None and self.impute == "none":
            raise ValueError("bins need imputation: a missing value falls in no bin")
        return self


class CategoricalTransform(Strict):
    impute: Literal["most_frequent", "constant", "none"] = "constant"
    fill_value: str = "missing"
    encode: Literal["onehot", "ordinal"] = "onehot"


class Transforms(Strict):
    numeric: NumericTransform = NumericTransform()
    categorical: CategoricalTransform = CategoricalTransform()
    overrides: dict[str, NumericTransform | CategoricalTransform] = Field(
        default_factory=dict, description="Per-feature transforms, by feature name."
    )


class Estimator(Strict):
    class_path: str = Field(alias="class")
    params: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("class_path")
    @classmethod
    def _allowed(cls, value: str) -> str:
        if value not in ESTIMATORS:
            allowed = ", ".join(sorted(ESTIMATORS))
            raise ValueError(f"{value!r} is not an allowed estimator; allowed: {allowed}")
        return value

    @field_validator("params")
    @classmethod
    def _params_fit_class(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "random_state" in value:
            raise ValueError("set seeds.estimator instead of params.random_state")
        _check_plain(value, "params")
        class_path = info.data.get("class_path")
        if class_path is None:  # the class itself was refused; that error is reported
            return value
        estimator_class = import_estimator(class_path)
        known = set(estimator_class().get_params()) | EXTRA_PARAMS.get(class_path, set())
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"{class_path.rsplit('.', 1)[1]} has no parameter(s) {unknown}; "
                f"known: {sorted(known - {'random_state'})}"
            )
        if value.get("device") not in (None, "cpu"):
            raise ValueError("device: only 'cpu' (govern trains on the CPU)")
        if "callbacks" in value and value["callbacks"] is not None:
            raise ValueError("callbacks are not allowed in a spec")
        try:
            made = estimator_class(**value)
            if hasattr(made, "_parameter_constraints"):  # scikit-learn's own checks
                made._validate_params()
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc)) from None
        return value


class Seeds(Strict):
    split: int = Field(default=0, ge=0, le=2**32 - 1)
    estimator: int = Field(default=0, ge=0, le=2**32 - 1)
    explain: int = Field(
        default=0,
        ge=0,
        le=2**32 - 1,
        description="Seed for the sampling explainers (anchors, counterfactuals, permutation "
        "SHAP) when they explain this model's decisions.",
    )


class Validation(Strict):
    fraction: float = Field(default=0.2, gt=0, lt=1)
    stratify: bool = True


class Gate(Strict):
    metric: Literal["roc_auc", "accuracy", "brier"] = "roc_auc"
    threshold: float = 0.5

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "brier"


# The score at or above which the positive class is given, unless the spec sets another: the
# one copy (``InputSchema.threshold`` defaults to it for a document without one).
DEFAULT_THRESHOLD = 0.5


class Decision(Strict):
    threshold: float = Field(
        default=DEFAULT_THRESHOLD,
        gt=0,
        lt=1,
        description="Score at or above which the positive class is given.",
    )


# fairlearn's reductions' constraints, by the names a spec uses (``lineage.mitigation``).
ReductionConstraint = Literal[
    "demographic_parity",
    "equalized_odds",
    "true_positive_rate_parity",
    "false_positive_rate_parity",
    "error_rate_parity",
]


class Mitigation(Strict):
    """A fairlearn reduction: the estimator refitted under a fairness constraint on the
    protected attribute (exponentiated gradient, Agarwal et al. 2018). The attribute is read at
    fit time only: the model never takes it as an input, and scores without it."""

    method: Literal["exponentiated_gradient"] = "exponentiated_gradient"
    constraint: ReductionConstraint = "demographic_parity"
    attribute: str = Field(min_length=1, max_length=200, description="A protected attribute")
    eps: float = Field(
        default=0.01, ge=0.001, le=0.5, description="How far from the constraint it may stay"
    )
    max_iter: int = Field(default=50, ge=1, le=100)


class ScorecardSpec(Strict):
    """A logistic scorecard (``lineage.scorecard``): every feature binned and encoded by its
    weight of evidence, a LogisticRegression on those, and points per bin."""

    binning: Literal["monotone", "quantile"] = Field(
        default="monotone",
        description="monotone: fine quantile bins merged until the positive-class rate only "
        "rises or only falls across them; quantile: equal-count bins.",
    )
    max_bins: int = Field(default=6, ge=2, le=20, description="Most bins per feature")
    min_bin_share: float = Field(
        default=0.05, ge=0.0, le=0.5, description="Fewest training rows a bin may hold, as a share"
    )
    pdo: float = Field(default=20.0, gt=0, le=1000, description="Points to double the odds")
    base_score: float = Field(default=600.0, ge=0, le=10000, description="Score at base_odds")
    base_odds: float = Field(
        default=50.0, gt=0, le=1e6, description="Odds of the favourable class at base_score"
    )


SCORECARD_ESTIMATOR = "sklearn.linear_model.LogisticRegression"


class TrainingSpec(Strict):
    model_name: str = Field(alias="model", pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=2000)
    intended_use: str = Field(default="", max_length=4000)
    dataset: DatasetRef
    target: Target
    features: list[Feature] = Field(min_length=1)
    protected: list[Protected] = Field(default_factory=list)
    public_context: list[ContextKey] = Field(
        default_factory=list,
        max_length=MAX_PUBLIC_CONTEXT,
        description="Context keys that every role reading a decision may see; the rest of "
        "the context only compliance and admin see. Never a protected attribute.",
    )
    constraints: list[Constraint] = Field(
        default_factory=list,
        max_length=50,
        description="Relations between numeric features that every counterfactual keeps, "
        "e.g. 'payments_to_income >= housing_to_income'.",
    )
    transforms: Transforms = Transforms()
    estimator: Estimator
    seeds: Seeds = Seeds()
    validation: Validation = Validation()
    gate: Gate = Gate()
    decision: Decision = Decision()
    mitigation: Mitigation | None = Field(
        default=None,
        description="Optional: train under a fairness constraint (fairlearn's reductions).",
    )
    scorecard: ScorecardSpec | None = Field(
        default=None,
        description="Optional: a logistic scorecard (binning and weight of evidence in front of "
        "LogisticRegression), with points per bin in the model card and reason codes from "
        "points lost.",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("features")
    @classmethod
    def _unique_features(cls, value: list[Feature], info: ValidationInfo) -> list[Feature]:
        names = [f.name for f in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature names {duplicates}")
        target = info.data.get("target")
        if target is not None and target.column in names:
            raise ValueError(f"the target column {target.column!r} cannot be a feature")
        return value

    @field_validator("protected")
    @classmethod
    def _inputs_need_a_reason(cls, value: list[Protected], info: ValidationInfo) -> list[Protected]:
        """A protected attribute is audited, not used, unless the spec says in writing why the
        model may use it: then it is both a feature and audited as protected."""
        names = [p.name for p in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate protected attributes {duplicates}")
        features = {f.name: f for f in info.data.get("features") or []}
        unjustified = sorted(p.name for p in value if p.name in features and not p.justification)
        if unjustified:
            raise ValueError(
                f"{unjustified} are also features: a feature may be audited as a protected "
                "attribute only with a written justification (why the model may use it)"
            )
        for p in value:
            if p.name in features and features[p.name].type is not p.type:
                raise ValueError(
                    f"{p.name!r} is a {features[p.name].type} feature: declare it protected "
                    f"with type: {features[p.name].type}"
                )
        target = info.data.get("target")
        if target is not None and target.column in names:
            raise ValueError(f"the target column {target.column!r} cannot be protected")
        return value

    @field_validator("public_context")
    @classmethod
    def _public_never_protected(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return check_public_context(value, info.data.get("protected") or [])

    @field_validator("constraints")
    @classmethod
    def _numeric_pairs(cls, value: list[Constraint], info: ValidationInfo) -> list[Constraint]:
        by_name = {f.name: f for f in info.data.get("features") or []}
        for constraint in value:
            for name in (constraint.left, constraint.right):
                if name not in by_name:
                    raise ValueError(f"{constraint.text!r} names {name!r}, which is no feature")
                if by_name[name].type is not FeatureType.numeric:
                    raise ValueError(f"{constraint.text!r}: {name!r} is not numeric")
            if constraint.left == constraint.right:
                raise ValueError(f"{constraint.text!r} compares a feature with itself")
        return value

    @field_validator("transforms")
    @classmethod
    def _overrides_fit(cls, value: Transforms, info: ValidationInfo) -> Transforms:
        by_name = {f.name: f for f in info.data.get("features") or []}
        unknown = sorted(set(value.overrides) - set(by_name))
        if unknown:
            raise ValueError(f"overrides name unknown features {unknown}")
        for name, override in value.overrides.items():
            numeric = by_name[name].type is FeatureType.numeric
            expected = NumericTransform if numeric else CategoricalTransform
            if not isinstance(override, expected):
                raise ValueError(
                    f"the override for {name!r} does not fit a {by_name[name].type} feature"
                )
        return value

    @model_validator(mode="after")
    def _mitigation_fits(self) -> Self:
        if self.mitigation is None:
            return self
        name = self.mitigation.attribute
        if name not in {p.name for p in self.protected}:
            raise ValueError(f"mitigation.attribute {name!r} is not a protected attribute")
        from sklearn.utils.validation import has_fit_parameter

        if not has_fit_parameter(import_estimator(self.estimator.class_path)(), "sample_weight"):
            raise ValueError("mitigation needs an estimator that takes sample weights")
        return self

    @model_validator(mode="after")
    def _scorecard_fits(self) -> Self:
        if self.scorecard is None:
            return self
        if self.estimator.class_path != SCORECARD_ESTIMATOR:
            raise ValueError(f"a scorecard's estimator is {SCORECARD_ESTIMATOR}")
        if self.mitigation is not None:
            raise ValueError(
                "a scorecard cannot be trained under a mitigation: its points are one regression's"
            )
        if self.transforms != Transforms():
            raise ValueError(
                "a scorecard bins and encodes every feature itself: leave out transforms"
            )
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def protected_features(self) -> list[str]:
        """Protected attributes that are also model inputs (each with a justification)."""
        features = set(self.feature_names)
        return [p.name for p in self.protected if p.name in features]

    @property
    def favourable_class(self) -> Any:
        fav = self.target.favourable_class
        return self.target.positive_class if fav is None else fav

    def transform_for(self, feature: Feature) -> NumericTransform | CategoricalTransform:
        if feature.name in self.transforms.overrides:
            return self.transforms.overrides[feature.name]
        if feature.type is FeatureType.numeric:
            return self.transforms.numeric
        return self.transforms.categorical

    def resolved(self) -> dict[str, Any]:
        """The spec with every default filled in: what is stored and what a rebuild re-runs.

        Fields added after the first specs were recorded (``public_context``, ``constraints``,
        and the per-feature and per-attribute ones in ``LATER_FIELDS``) are left out while unset:
        they change nothing about training, and a spec without them resolves to the same
        document, and hash, as before they existed, so the recorded specs of older versions are
        exactly what they re-run today.
        """
        dumped = self.model_dump(mode="json", by_alias=True)
        for name in ("public_context", "constraints", "mitigation", "scorecard"):
            if not dumped[name]:
                del dumped[name]
        transforms = dumped["transforms"]
        for transform in (transforms["numeric"], *transforms["overrides"].values()):
            if "bins" in transform and transform["bins"] is None:
                del transform["bins"]
        for section in ("features", "protected"):
            for entry in dumped[section]:
                for name, default in LATER_FIELDS.items():
                    if name in entry and entry[name] == default:
                        del entry[name]
        return dumped


# Per-feature and per-attribute fields added after specs were first recorded, with the value
# that means "unset": ``resolved`` leaves them out then (see there).
LATER_FIELDS: dict[str, Any] = {
    "nullable": None,
    "labels": None,
    "reasons": None,
    "order": None,
    "transitions": None,
    "values": None,
    "required": False,
    "justification": None,
}


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: keys must be strings")
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}.{i}")
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise ValueError(f"{where}: only plain JSON values are allowed")


class _SpecLoader(yaml.SafeLoader):
    """The safe loader, refusing anchors and aliases: a spec needs neither, and nested aliases
    (a "billion laughs") expand a few hundred bytes into billions of nodes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasRefused(event.start_mark.line + 1)
        return super().compose_node(parent, index)


class _AliasRefused(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def load_spec_text(text: str, *, source: str = "spec") -> dict[str, Any]:
    """Parse YAML or JSON (JSON is YAML) with the safe loader only: no Python object tags, no
    anchors or aliases, no NUL and no unpaired surrogate in any text."""
    if re.search(r"!!python|!<tag:yaml.org,2002:python", text):
        raise InvalidInput(
            f"{source}: Python object tags are not allowed in a spec",
            details=[{"field": "", "message": "YAML python tags are refused"}],
        )
    try:
        data = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except _AliasRefused as exc:
        raise InvalidInput(
            f"{source}: YAML anchors and aliases are not allowed (line {exc.line})",
            details=[{"field": "", "message": f"anchor or alias at line {exc.line}"}],
        ) from None
    except yaml.YAMLError as exc:
        raise InvalidInput(
            f"{source} is neither valid YAML nor JSON: {exc}",
            details=[{"field": "", "message": str(exc)}],
        ) from None
    except RecursionError:
        raise InvalidInput(
            f"{source} is nested too deeply",
            details=[{"field": "", "message": "nesting exceeds what a spec can need"}],
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{source} must be a mapping of fields",
            details=[{"field": "", "message": "expected a mapping"}],
        )
    bad = find_bad_text(data)
    if bad is not None:
        field, problem = bad
        raise InvalidInput(
            f"{source}: {field} {problem}", details=[{"field": field, "message": problem}]
        )
    return data


def parse_spec(data: dict[str, Any] | str) -> TrainingSpec:
    if isinstance(data, str):
        data = load_spec_text(data)
    try:
        return TrainingSpec.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc.errors())
        fields = field_list([d["field"] for d in details], empty="spec")
        raise InvalidInput(f"invalid training spec: {fields}", details=details) from None


def spec_hash(resolved: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()


# Parameters that set how long a fit runs, each with the setting that bounds it.
COST_PARAMS = {"n_estimators": "max_estimators", "max_iter": "max_iterations"}


def cost_problems(spec: TrainingSpec, limits: dict[str, int]) -> list[dict[str, str]]:
    """Estimator parameters beyond the configured bounds (``limits``: setting -> bound), and any
    attempt to fit on more than one core: a fit shares the machine with serving."""
    params = spec.estimator.params
    problems = []
    for name, setting in COST_PARAMS.items():
        value, bound = params.get(name), limits.get(setting)
        if bound is not None and isinstance(value, int | float) and value > bound:
            problems.append(
                {
                    "field": f"estimator.params.{name}",
                    "message": f"at most {bound} (GOV_{setting.upper()}), got {value}",
                }
            )
    if params.get("n_jobs") not in (None, 1):
        problems.append(
            {"field": "estimator.params.n_jobs", "message": "a fit runs on one core: 1 or null"}
        )
    return problems
