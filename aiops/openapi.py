"""The OpenAPI 3.1 document of an :class:`~aiops.httpapi.HttpApi`, built from its routes.

Each route contributes its path parameters, the properties of its query model as query
parameters, its body model as the JSON request body (pydantic's JSON Schema, which OpenAPI
3.1 takes as is), the role it needs (``x-aiops-role`` and the bearer security scheme) and the
error answers every route of the base may give.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

__all__ = ["build_openapi"]

_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?}")
_ERROR = {"type": "object", "required": ["status", "error"],
          "properties": {"status": {"const": "error"}, "error": {"type": "string"},
                         "field": {"type": "string"}}}
_STANDARD_ERRORS = {400: "Malformed request: the error names the field", 404: "No such route or object",
                    413: "Request body too large"}

RouteSpec = tuple[str, str, Any, "type[BaseModel] | None", "type[BaseModel] | None", str, dict[int, str]]


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if prop.get("description"):
            param["description"] = prop["description"]
        if prop.get("type") == "array":
            param["style"], param["explode"] = "form", True
        out.append(param)
    return out


def build_openapi(title: str, routes: Sequence[RouteSpec]) -> dict[str, Any]:
    """The document for ``routes``: ``(method, path, role, body, query, summary, responses)`` each."""
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {"Error": _ERROR}
    for method, path, role, body, query, summary, responses in routes:
        oa_path = _PARAM.sub(r"{\1}", path)
        op: dict[str, Any] = {
            "operationId": f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', oa_path).strip('_') or 'root'}",
            "summary": summary or f"{method} {path}",
        }
        params: list[dict[str, Any]] = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                                        for n in _PARAM.findall(path)]
        if query is not None:
            params += _query_parameters(query, components)
        if params:
            op["parameters"] = params
        if body is not None:
            schema = _schema(body, components)
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        errors = dict(_STANDARD_ERRORS)
        if role is not None:
            op["security"] = [{"bearer": []}]
            op["x-aiops-role"] = str(getattr(role, "value", role))
            errors[401] = "No valid bearer token"
            errors[403] = f"The token's role does not include {op['x-aiops-role']}"
        errors.update(responses)
        op["responses"] = {"200": {"description": "Success"}}
        for status, text in sorted(errors.items()):
            op["responses"][str(status)] = {"description": text, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        paths.setdefault(oa_path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
