"""The published OpenAPI document describes every successful body.

Every 2xx response of every route declares its content. A JSON body has a schema, and nothing
in that schema is an untyped object: after resolving ``$ref``, and recursively into properties,
items, additionalProperties and anyOf/oneOf/allOf, every object has properties or
additionalProperties of a declared type (a map keyed by feature name, ``dict[str, float]``, is
typed), and no part is "anything" (``{}``). An object never admits extra keys of no declared
type (``additionalProperties: true``). A body that is not JSON (an HTML page, a CSV or Parquet
export, the /metrics text) declares its media type, with a string schema if any.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from governance.app import create_app

NO_BODY = {"204", "205", "304"}
COMBINATORS = ("anyOf", "oneOf", "allOf")


def is_json(media_type: str) -> bool:
    kind = media_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


class Checker:
    """Finds the untyped parts of schemas in one OpenAPI document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.components: dict[str, Any] = document.get("components", {}).get("schemas", {})

    def resolve(
        self, schema: dict[str, Any], seen: frozenset[str]
    ) -> tuple[dict[str, Any], frozenset[str]] | None:
        """The schema a ``$ref`` points to (None when already being checked: a recursive
        type is checked once)."""
        while "$ref" in schema:
            ref = schema["$ref"]
            if ref in seen:
                return None
            seen = seen | {ref}
            name = ref.rsplit("/", 1)[-1]
            if name not in self.components:
                raise AssertionError(f"{ref} is not in the document's components")
            schema = self.components[name]
        return schema, seen

    def untyped(
        self, schema: Any, where: str = "$", seen: frozenset[str] = frozenset()
    ) -> list[str]:
        """Where, in ``schema``, a value or an object's members have no declared type."""
        if not isinstance(schema, dict):
            return [f"{where}: not a schema"]
        resolved = self.resolve(schema, seen)
        if resolved is None:
            return []
        schema, seen = resolved
        found: list[str] = []
        branches = [(k, s) for k in COMBINATORS for s in schema.get(k, [])]
        for i, (kind, branch) in enumerate(branches):
            found += self.untyped(branch, f"{where}.{kind}[{i}]", seen)
        declared = schema.get("type")
        kinds = set(declared) if isinstance(declared, list) else {declared}
        if declared is None and not branches and not ({"const", "enum"} & set(schema)):
            found.append(f"{where}: no type")
        if "object" in kinds or "properties" in schema or "additionalProperties" in schema:
            found += self._object(schema, where, seen)
        if "array" in kinds:
            found += self._array(schema, where, seen)
        return found

    def _object(self, schema: dict[str, Any], where: str, seen: frozenset[str]) -> list[str]:
        found: list[str] = []
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        typed_extra = isinstance(extra, dict) and bool(extra)
        if not properties and not typed_extra:
            found.append(f"{where}: an object with neither properties nor typed values")
        elif extra is True or extra == {}:
            found.append(f"{where}: admits extra keys of no declared type")
        for name, member in properties.items():
            found += self.untyped(member, f"{where}.{name}", seen)
        if typed_extra:
            found += self.untyped(extra, f"{where}[*]", seen)
        return found

    def _array(self, schema: dict[str, Any], where: str, seen: frozenset[str]) -> list[str]:
        found: list[str] = []
        for i, item in enumerate(schema.get("prefixItems") or []):
            found += self.untyped(item, f"{where}[{i}]", seen)
        items = schema.get("items")
        if items is None and not schema.get("prefixItems"):
            found.append(f"{where}: an array of items of no declared type")
        elif isinstance(items, dict):
            found += self.untyped(items, f"{where}[]", seen)
        return found

    def problems(self, document: dict[str, Any]) -> dict[str, list[str]]:
        """Route ("GET /path") -> what is wrong with its successful responses."""
        result: dict[str, list[str]] = {}
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                route = f"{method.upper()} {path}"
                for status, response in operation.get("responses", {}).items():
                    if not str(status).startswith("2") or str(status) in NO_BODY:
                        continue
                    found = self._response(str(status), response)
                    if found:
                        result.setdefault(route, []).extend(found)
        return result

    def _response(self, status: str, response: dict[str, Any]) -> list[str]:
        content = response.get("content")
        if "$ref" in response:
            return [f"{status}: a referenced response is not checked"]
        if not content:
            return [f"{status}: no content declared"]
        found: list[str] = []
        for media_type, entry in content.items():
            schema = (entry or {}).get("schema")
            if is_json(media_type):
                if not schema:
                    found.append(f"{status} {media_type}: no schema")
                else:
                    found += [f"{status} {media_type} {p}" for p in self.untyped(schema)]
            elif schema and schema.get("type") != "string":
                found.append(f"{status} {media_type}: a body that is not JSON is a string")
        return found


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    var = tmp_path_factory.mktemp("openapi")
    settings = Settings(
        database_url=f"sqlite:///{var / 'unused.db'}", var_dir=var, environment="test"
    )
    openapi: dict[str, Any] = create_app(settings).openapi()
    return openapi


def test_every_successful_body_has_a_typed_schema(document: dict[str, Any]) -> None:
    problems = Checker(document).problems(document)
    routes = sum(len(operations) for operations in document["paths"].values())
    assert routes > 50, "the whole API is in the document"
    listed = "\n".join(f"{route}: {'; '.join(found)}" for route, found in sorted(problems.items()))
    assert not problems, f"{len(problems)} of {routes} routes have untyped 2xx bodies:\n{listed}"


def test_non_json_bodies_declare_their_media_type(document: dict[str, Any]) -> None:
    def media(path: str, method: str = "get") -> set[str]:
        return set(document["paths"][path][method]["responses"]["200"]["content"])

    assert media("/metrics") == {"text/plain"}
    assert {"application/json", "text/csv", "application/vnd.apache.parquet"} <= media(
        "/api/v1/decisions"
    )
    assert {"application/json", "text/html"} <= media("/api/v1/decisions/{decision_id}/dossier")
    assert {"application/json", "text/html"} <= media(
        "/api/v1/models/{name}/versions/{version}/card"
    )


# The checker itself: what it must catch, and what it must let through ---------------------------

TYPED = [
    {"type": "string"},
    {"type": "null"},
    {"enum": ["a", "b"]},
    {"type": "object", "properties": {"a": {"type": "integer"}}},
    {"type": "object", "additionalProperties": {"type": "number"}},
    {"type": "array", "items": {"type": "string"}},
    {"anyOf": [{"$ref": "#/components/schemas/Typed"}, {"type": "null"}]},
    {"$ref": "#/components/schemas/Tree"},
]
UNTYPED = [
    ({}, "$: no type"),
    ({"type": "object"}, "$: an object with neither properties nor typed values"),
    ({"type": "object", "additionalProperties": True}, "$: an object with neither"),
    (
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
        "$: admits extra keys",
    ),
    (
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {}},
        "$: admits extra keys",
    ),
    ({"type": "array"}, "$: an array of items of no declared type"),
    ({"type": "array", "items": {}}, "$[]: no type"),
    ({"anyOf": [{"type": "object"}, {"type": "null"}]}, "$.anyOf[0]: an object"),
    ({"type": "object", "additionalProperties": {"type": "object"}}, "$[*]: an object"),
    ({"$ref": "#/components/schemas/Loose"}, "$.deep.anyOf[0]: an object"),
    ({"type": ["object", "null"]}, "$: an object with neither"),
]
COMPONENTS = {
    "components": {
        "schemas": {
            "Typed": {"type": "object", "properties": {"a": {"type": "integer"}}},
            "Loose": {
                "type": "object",
                "properties": {"deep": {"anyOf": [{"type": "object"}, {"type": "null"}]}},
            },
            "Tree": {
                "type": "object",
                "properties": {
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}}
                },
            },
        }
    }
}


@pytest.mark.parametrize("schema", TYPED)
def test_the_checker_lets_typed_schemas_through(schema: dict[str, Any]) -> None:
    assert Checker(COMPONENTS).untyped(schema) == []


@pytest.mark.parametrize(("schema", "expected"), UNTYPED)
def test_the_checker_finds_untyped_schemas(schema: dict[str, Any], expected: str) -> None:
    found = Checker(COMPONENTS).untyped(schema)
    assert any(f.startswith(expected) for f in found), found


def test_the_checker_checks_each_successful_response() -> None:
    def operation(responses: dict[str, Any]) -> dict[str, Any]:
        return {"paths": {"/x": {"get": {"responses": responses}}}}

    untyped_json = {"content": {"application/json": {"schema": {"type": "object"}}}}
    no_schema = {"content": {"application/json": {}}}
    html = {"content": {"text/html": {"schema": {"type": "string"}}}}
    html_object = {"content": {"text/html": {"schema": {"type": "object"}}}}
    checker = Checker(COMPONENTS)
    assert checker.problems(operation({"200": html, "204": {}, "422": untyped_json})) == {}
    assert checker.problems(operation({"200": {"description": "ok"}})) == {
        "GET /x": ["200: no content declared"]
    }
    assert checker.problems(operation({"201": no_schema})) == {
        "GET /x": ["201 application/json: no schema"]
    }
    assert list(checker.problems(operation({"202": untyped_json}))) == ["GET /x"]
    assert list(checker.problems(operation({"200": html_object}))) == ["GET /x"]


def test_the_document_is_built_without_a_database(tmp_path: Path) -> None:
    """The check needs no backend: it runs once, not per database."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'never-created.db'}",
        var_dir=tmp_path,
        environment="test",
    )
    create_app(settings).openapi()
    assert not (tmp_path / "never-created.db").exists()
