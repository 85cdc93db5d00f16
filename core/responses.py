"""Building blocks of the typed response bodies.

Several services build their answers as plain dicts (an explanation, a fairness report, a
dossier). Their routes declare a ``Body`` model for each, so that the published OpenAPI document
says what a client receives, key by key:

* a ``Body`` is closed: a key the model does not declare is an error, never silently dropped,
  so a key added to a service without its schema fails its tests instead of vanishing;
* a key the service leaves out in some cases has a default (and is not ``required`` in the
  schema); routes that validate a dict serve it with ``response_model_exclude_unset``, so such
  a key is present exactly when the service put it there, and no default is ever added;
* values keep their JSON type: ``Number`` keeps an integer an integer and a float a float, and
  ``Scalar`` (a class label, a category, a feature value) is text, an integer, a float or a
  boolean, as the data has it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from typing_extensions import TypeAliasType


class Body(BaseModel):
    """A JSON object a service builds: every key declared, none added or dropped."""

    model_config = ConfigDict(extra="forbid")


class Strict(BaseModel):
    """A request body: a key it does not declare is refused (422), never ignored."""

    model_config = ConfigDict(extra="forbid")


# A class label, a category or a feature value, as the data has it.
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
# A feature value as logged: a scalar, or null for a missing value.
FeatureValue = Scalar | None
# A number that may be an integer or a float (a recorded figure, a bound from a spec).
Number = StrictInt | StrictFloat
# A moment the service has already written as ISO 8601 text (kept as it was written).
IsoTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
# Library name -> version, as recorded with a computation.
LibraryVersions = dict[str, str]

# Any JSON value: only for what a client supplied free-form and the service keeps as given (an
# external model's declared hyperparameters and code, the parameters of a query in the access
# trail), never for a document the service itself shapes.
if TYPE_CHECKING:
    JsonValue = bool | int | float | str | None | list["JsonValue"] | dict[str, "JsonValue"]
else:
    JsonValue = TypeAliasType(
        "JsonValue",
        StrictBool
        | StrictInt
        | StrictFloat
        | StrictStr
        | list["JsonValue"]
        | dict[str, "JsonValue"]
        | None,
    )
