"""The OpenLineage run event's JSON Schema (spec 2-0-2: RunEvent, Run, Job, InputDataset,
OutputDataset and the facet base), for validating the events govern emits.

``openlineage-python`` 1.54.0 ships no JSON schema (neither its wheel nor the last source
distribution, 1.39.0, holds one; its classes are generated from the spec at build time), and
this machine cannot reach the OpenLineage repository that publishes the spec files. So the
schema is written here from the spec's published structure: the required fields, their types,
the event types, and every facet's ``_producer`` and ``_schemaURL``. The events are also checked
against the client's own classes and the ``schemaURL``s they name.
"""

from __future__ import annotations

from typing import Any

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"

_FACET = {
    "type": "object",
    "required": ["_producer", "_schemaURL"],
    "properties": {
        "_producer": {"type": "string", "format": "uri", "minLength": 1},
        "_schemaURL": {"type": "string", "format": "uri", "minLength": 1},
    },
    "additionalProperties": True,
}
_FACETS = {"type": "object", "additionalProperties": {"$ref": "#/$defs/BaseFacet"}}
_DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {
        "namespace": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "facets": _FACETS,
        "inputFacets": _FACETS,
        "outputFacets": _FACETS,
    },
    "additionalProperties": False,
}

RUN_EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SPEC,
    "$defs": {"BaseFacet": _FACET},
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri", "minLength": 1},
        "schemaURL": {"type": "string", "format": "uri", "const": f"{SPEC}#/$defs/RunEvent"},
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": _FACETS},
            "additionalProperties": False,
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1},
                "facets": _FACETS,
            },
            "additionalProperties": False,
        },
        "inputs": {"type": "array", "items": _DATASET},
        "outputs": {"type": "array", "items": _DATASET},
    },
    "additionalProperties": False,
}
