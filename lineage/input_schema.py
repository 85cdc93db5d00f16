"""A model version's input schema: what predict accepts, recorded from the spec and the data.

``build_input_schema`` records it as a JSON document (``ModelVersion.input_schema``: stored,
hashed with the lineage, returned by the API). ``InputSchema`` is that document typed: read
once, with ``InputSchema.from_document``, when a model is loaded or a version is read, and
``document()`` gives back exactly the stored document. The decision rule (a score at or above
the threshold gives the positive class) is ``InputSchema.label_for`` and nowhere else.

It also turns records into the DataFrame the fitted Pipeline expects, identically at training,
serving, explanation and rebuild time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, TypeVar

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from core.errors import GovernanceError, InvalidInput, field_list, validation_details
from lineage.scorecard import Scorecard
from lineage.spec import DEFAULT_THRESHOLD, Constraint, FeatureType, TrainingSpec, category_text
from lineage.spec import Feature as DeclaredFeature

if TYPE_CHECKING:
    import pandas as pd

# What the model sees for a category: its text form (``category_text``), so the integer code 2,
# the float 2.0 a column with gaps holds, and the string "2" are one category.
category_key = category_text


def _label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def same_class(value: Any, declared: Any) -> bool:
    """A class in the data is the declared one: the same text (the label "1" and the code 1), or
    the same number (1 and 1.0). A boolean matches only a boolean or its own text."""
    value = _label(value)
    if str(value) == str(declared):
        return True
    numbers = (int, float)
    return (
        isinstance(value, numbers)
        and isinstance(declared, numbers)
        and not isinstance(value, bool)
        and not isinstance(declared, bool)
        and float(value) == float(declared)
    )


def category_value(value: Any) -> Any:
    """A category as the data has it, as plain JSON: integral numbers as ints, else strings."""
    value = _label(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return str(value)


def category_order(value: Any) -> tuple[int, Any]:
    """Integer codes in numeric order first, then strings: a mixed list sorts without error."""
    if isinstance(value, bool):
        return (0, int(value))
    return (0, value) if isinstance(value, int) else (1, str(value))


# The document typed --------------------------------------------------------------------------

# A category, a class or a fill value as the data has it (text, an integer code, a number, a
# boolean), kept exactly as stored: nothing is converted, so a document reads back unchanged.
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
Number = StrictInt | StrictFloat
Pair = Annotated[list[Number], Field(min_length=2, max_length=2)]
Kind = Literal["numeric", "categorical"]


class InvalidInputSchema(GovernanceError):
    """A stored input schema govern cannot read: the record, not the request, is at fault."""

    status_code = 409
    code = "data_integrity"


class _Entry(BaseModel):
    """A part of the stored document: typed, frozen, no unknown key. ``document()`` gives back
    the stored mapping itself: only the keys it had (a field at its default is not added)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def document(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


_T = TypeVar("_T", bound=_Entry)


class MissingPolicy(_Entry):
    """What the fitted model does with a missing value (``lineage.pipeline.missing_value_policy``):
    the imputation, and the value it fills in when it learned one."""

    impute: StrictStr
    fill_value: Scalar | None = None


class FeatureEntry(_Entry):
    """One model input as recorded. Documents written before the loan-book work (issue 17) have
    only name, type, description, immutable, direction, and bounds and observed_range or
    categories and unseen."""

    name: StrictStr
    type: Kind
    description: StrictStr | None = None
    immutable: StrictBool = False
    direction: Literal["increase", "decrease", "any"] = "any"
    nullable: StrictBool = False
    missing_in_training: StrictInt | None = None
    bounds: Pair | None = None
    observed_range: Pair | None = None
    observed_median: Number | None = None
    categories: list[Scalar] | None = None
    # Unset (a document written by hand): an unseen category is accepted, as before.
    unseen: Literal["reject", "ignore"] | None = None
    labels: dict[str, StrictStr] | None = None
    reasons: dict[str, StrictStr] | None = None
    order: list[Scalar] | None = None
    transitions: dict[str, list[Scalar]] | None = None
    missing: MissingPolicy | None = None

    @property
    def numeric(self) -> bool:
        return self.type == "numeric"

    @property
    def codes(self) -> dict[str, Any]:
        """The declared categories by their text (``category_key``)."""
        return {category_key(c): c for c in self.categories or []}

    @property
    def missing_recorded(self) -> bool:
        """Whether the document says how a missing value is handled (older ones do not)."""
        return bool({"nullable", "missing", "missing_in_training"} & self.model_fields_set)

    def value_label(self, value: Any) -> str:
        """A value as a person reads it: the category's label with its code beside it."""
        return _value_text(None if self.numeric else self.labels, value)


class ProtectedEntry(_Entry):
    """A protected attribute as recorded; ``feature``: it is also a model input."""

    name: StrictStr
    type: Kind = "categorical"
    bins: Annotated[list[Number], Field(min_length=2)] | None = None
    values: list[Scalar] | None = None
    labels: dict[str, StrictStr] | None = None
    required: StrictBool = False
    justification: StrictStr | None = None
    feature: StrictBool = False
    values_source: Literal["spec", "training data"] | None = None


class InputSchema(_Entry):
    """A model version's input schema, typed. Build it from the stored document with
    ``from_document`` (once, when the version is read); ``document()`` is that document."""

    features: list[FeatureEntry] = Field(min_length=1)
    protected: list[ProtectedEntry] = []
    target: StrictStr
    classes: Annotated[list[Scalar], Field(min_length=2, max_length=2)]
    positive_class: Scalar
    favourable_class: Scalar | None = None
    threshold: StrictFloat = Field(default=DEFAULT_THRESHOLD, gt=0, lt=1)
    constraints: list[Constraint] | None = None
    # The column of ``predict_proba`` that is the positive class (a model trained elsewhere may
    # keep its classes in another order).
    positive_index: StrictInt = Field(default=1, ge=0)
    decision_words: dict[str, StrictStr] | None = None
    # A scorecard's points table: its reason codes are the points lost (``lineage.scorecard``).
    scorecard: Scorecard | None = None

    @field_validator("features")
    @classmethod
    def _unique_names(cls, value: list[FeatureEntry]) -> list[FeatureEntry]:
        names = [f.name for f in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature names {duplicates}")
        return value

    @field_validator("positive_class")
    @classmethod
    def _second_class(cls, value: Any, info: ValidationInfo) -> Any:
        classes = info.data.get("classes")
        if classes is not None and not same_class(value, classes[1]):
            raise ValueError(f"must be the second of the classes {classes}")
        return value

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Self:
        """The stored document, validated; ``InvalidInputSchema`` names every field at fault."""
        return _validated(cls, document, "input_schema")

    # The decision rule: the one place it is written.
    def positive(self, score: Any) -> Any:
        """Whether a score (or, elementwise, an array of scores) gives the positive class."""
        return score >= self.threshold

    def label_for(self, score: float) -> Any:
        """The class a score gives: the positive one at or above the threshold."""
        negative, positive = self.classes
        return positive if self.positive(score) else negative

    @property
    def favourable(self) -> Any:
        """The class that is good for the subject (the positive class unless declared)."""
        return self.positive_class if self.favourable_class is None else self.favourable_class

    def is_favourable(self, label: Any) -> bool | None:
        """Whether a class label (as logged: the class or its text) is the favourable class."""
        return None if label is None else same_class(label, self.favourable)

    @property
    def by_name(self) -> dict[str, FeatureEntry]:
        return {f.name: f for f in self.features}

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def protected_names(self) -> list[str]:
        return [p.name for p in self.protected]


def _validated(cls: type[_T], document: Any, where: str) -> _T:
    try:
        return cls.model_validate(document)
    except ValidationError as exc:
        details = [
            {"field": f"{where}.{d['field']}".rstrip("."), "message": d["message"]}
            for d in validation_details(exc.errors())
        ]
        fields = field_list([d["field"] for d in details])
        raise InvalidInputSchema(
            f"the recorded input schema is not valid: {fields}", details=details
        ) from None


def _categories(feature: DeclaredFeature, column: pd.Series) -> list[Any]:
    if feature.categories:
        return sorted(feature.categories, key=category_order)
    observed = {category_key(v): category_value(v) for v in column.dropna().unique()}
    return sorted(observed.values(), key=category_order)


def _check_codes(feature: DeclaredFeature, categories: list[Any], where: str) -> None:
    known = {category_key(c) for c in categories}
    unknown = sorted(set(feature.codes_named()) - known)
    if unknown:
        raise InvalidInput(
            f"{where} names codes the data never has: {unknown}",
            details=[{"field": where, "message": f"codes {unknown} are not among {sorted(known)}"}],
        )


def build_input_schema(
    spec: TrainingSpec, frame: pd.DataFrame, classes: list[Any]
) -> dict[str, Any]:
    """``frame``: the rows the model is fitted on (for a registered model, all of them)."""
    import pandas as pd  # here, not at import: the CLI lists models without pandas

    features = []
    for i, feature in enumerate(spec.features):
        column = frame[feature.name]
        has_missing = bool(column.isna().any())
        entry: dict[str, Any] = {
            "name": feature.name,
            "type": feature.type.value,
            "description": feature.description,
            "immutable": feature.immutable,
            "direction": feature.direction.value,
            "nullable": has_missing if feature.nullable is None else feature.nullable,
            "missing_in_training": int(column.isna().sum()),
        }
        if feature.type is FeatureType.numeric:
            entry["bounds"] = list(feature.bounds) if feature.bounds else None
            numbers = pd.to_numeric(column, errors="coerce")
            entry["observed_range"] = [float(numbers.min()), float(numbers.max())]
            median = numbers.median()
            entry["observed_median"] = float(median) if pd.notna(median) else None
            if feature.reasons:
                entry["reasons"] = dict(feature.reasons)
        else:
            entry["categories"] = _categories(feature, column)
            entry["unseen"] = feature.unseen
            _check_codes(feature, entry["categories"], f"features.{i}")
            by_key = {category_key(c): c for c in entry["categories"]}
            for name in ("labels", "reasons"):
                if getattr(feature, name):
                    entry[name] = dict(getattr(feature, name))
            if feature.order is not None:
                entry["order"] = [by_key[category_key(c)] for c in feature.order]
            if feature.transitions is not None:
                entry["transitions"] = {
                    k: [by_key[category_key(t)] for t in targets]
                    for k, targets in feature.transitions.items()
                }
        features.append(entry)
    schema: dict[str, Any] = {
        "features": features,
        "protected": [_protected_entry(spec, p, frame) for p in spec.protected],
        "target": spec.target.column,
        "classes": [_label(c) for c in classes],
        "positive_class": _label(classes[1]),
        "favourable_class": next(
            (_label(c) for c in classes if same_class(c, spec.favourable_class)),
            spec.favourable_class,
        ),
        "threshold": spec.decision.threshold,
    }
    if spec.constraints:
        schema["constraints"] = [c.model_dump() for c in spec.constraints]
    return schema


def _protected_entry(spec: TrainingSpec, protected: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """As declared, and for a categorical attribute the values predict accepts: the declared
    ones, else those the data has. ``feature`` marks an attribute that is also a model input."""
    entry: dict[str, Any] = {
        k: v for k, v in protected.model_dump(mode="json").items() if v is not None
    }
    entry["feature"] = protected.name in spec.protected_features
    if protected.type is FeatureType.categorical and protected.name in frame:
        if protected.values is not None:
            entry["values"] = sorted(protected.values, key=category_order)
            entry["values_source"] = "spec"
        else:
            column = frame[protected.name].dropna()
            observed = {category_key(v): category_value(v) for v in column.unique()}
            entry["values"] = sorted(observed.values(), key=category_order)
            entry["values_source"] = "training data"
    return entry


def _value_text(labels: Mapping[str, str] | None, value: Any) -> str:
    if value is None:
        return "missing"
    label = (labels or {}).get(category_key(value))
    return f"{label} ({value})" if label else str(value)


def feature_label(feature: FeatureEntry | None, value: Any) -> str:
    """A value as a person reads it (``FeatureEntry.value_label``); ``None``: a feature the
    schema does not have."""
    return _value_text(None, value) if feature is None else feature.value_label(value)


def to_frame(schema: InputSchema, records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> the DataFrame the Pipeline was fitted on: numeric as float, categories as their
    text (``category_key``), a missing value (None, or absent) as NaN."""
    import pandas as pd  # here, not at import: the CLI lists models without pandas

    rows = list(records)
    data: dict[str, Any] = {}
    for feature in schema.features:
        name = feature.name
        values = [row.get(name) for row in rows]
        if feature.numeric:
            data[name] = pd.array(
                [np.nan if v is None else float(v) for v in values], dtype="float64"
            )
        else:
            data[name] = pd.Series(
                [
                    np.nan
                    if v is None or (isinstance(v, float) and np.isnan(v))
                    else category_key(v)
                    for v in values
                ],
                dtype=object,
            )
    return pd.DataFrame(data)


def positive_proba(pipeline: Any, frame: pd.DataFrame, schema: InputSchema) -> Any:
    """P(positive class) for each row, whatever order the estimator keeps its classes in."""
    return pipeline.predict_proba(frame)[:, schema.positive_index]


def frame_from_table(schema: InputSchema, table: pd.DataFrame) -> pd.DataFrame:
    """The column-wise equivalent of ``to_frame`` for a whole table (training, evaluation)."""
    import pandas as pd  # here, not at import: the CLI lists models without pandas

    data: dict[str, Any] = {}
    for feature in schema.features:
        column = table[feature.name]
        if feature.numeric:
            data[feature.name] = pd.to_numeric(column, errors="raise").astype("float64").to_numpy()
        else:
            present = column.notna().to_numpy()
            values = np.full(len(column), np.nan, dtype=object)
            values[present] = [category_key(_label(v)) for v in column.to_numpy()[present]]
            data[feature.name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data)
