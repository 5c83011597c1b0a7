"""JSON Schemas (draft 2020-12) of what each command prints with ``--json``.

Scripts can rely on these fields; the tests validate every command's output
against its schema. A failed command prints ``{"ok": false, "error": {...}}``
(``ERROR``), which every schema admits.
"""

from __future__ import annotations

from typing import Any

_STRING_LIST = {"type": "array", "items": {"type": "string"}}
_CHANGES = {
    "type": "object",
    "required": ["added", "removed"],
    "properties": {"added": _STRING_LIST, "removed": _STRING_LIST},
    "additionalProperties": False,
}
_COUNTS = {
    "type": "object",
    "required": ["count", "elements", "bytes"],
    "properties": {k: {"type": "integer", "minimum": 0} for k in ("count", "elements", "bytes")},
}
_OUTPUT_STATS = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "dtype": {"type": "string"},
        "min": {"type": "number"},
        "max": {"type": "number"},
        "mean": {"type": "number"},
        "value": {"type": "string"},
    },
}

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["ok", "error"],
    "properties": {
        "ok": {"const": False},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "hint": {"type": "string"},
                "fixes": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    },
}


def _success(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["ok", *required],
        "properties": {"ok": {"type": "boolean"}, **properties},
    }


SUCCESS: dict[str, dict[str, Any]] = {
    "export": _success(
        ["output", "nodes", "dynamic_shapes", "range_constraints", "refinements"],
        {
            "output": {"type": "string"},
            "nodes": {"type": "integer", "minimum": 0},
            "seconds": {"type": "number", "minimum": 0},
            "dynamic_shapes": {"type": "string"},
            "range_constraints": {"type": "object", "additionalProperties": {"type": "string"}},
            "specializations": _STRING_LIST,
            "refinements": _STRING_LIST,
        },
    ),
    "run": _success(
        ["inputs", "outputs"],
        {
            "inputs": {"type": "string"},
            "outputs": {"type": "array", "items": _OUTPUT_STATS},
            "check": {
                "type": "object",
                "required": ["match", "outputs"],
                "properties": {
                    "match": {"type": "boolean"},
                    "outputs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "max_abs_error", "match"],
                            "properties": {
                                "name": {"type": "string"},
                                "max_abs_error": {"type": "number", "minimum": 0},
                                "match": {"type": "boolean"},
                            },
                        },
                    },
                },
            },
        },
    ),
    "show": _success(
        ["program"],
        {
            "program": {"type": "string", "pattern": "^ExportedProgram:"},
            "checks": {"type": "string"},
            "html": {"type": "string"},
            "svg": {"type": "string"},
        },
    ),
    "report": _success(
        ["archive_bytes", "nodes", "ops", "state", "dynamic_dims", "specializations"],
        {
            "archive_bytes": {"type": "integer", "minimum": 1},
            "nodes": {"type": "integer", "minimum": 0},
            "ops": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
            "state": {
                "type": "object",
                "required": ["parameters", "buffers", "constants"],
                "properties": {k: _COUNTS for k in ("parameters", "buffers", "constants")},
            },
            "dynamic_dims": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["source", "symbol", "range"],
                    "properties": {k: {"type": "string"} for k in ("source", "symbol", "range")},
                },
            },
            "specializations": _STRING_LIST,
        },
    ),
    "diff": _success(
        ["identical", "signature", "nodes", "ranges", "guards", "ops"],
        {
            "identical": {"type": "boolean"},
            **{k: _CHANGES for k in ("signature", "nodes", "ranges", "guards")},
            "ops": {
                "type": "object",
                "additionalProperties": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
        },
    ),
    "demo": _success(["failures"], {"failures": {"type": "integer", "minimum": 0}}),
}


def schema(command: str) -> dict[str, Any]:
    """The schema of ``graphlift COMMAND --json``'s output: success or error."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"graphlift {command} --json",
        "anyOf": [SUCCESS[command], ERROR],
    }
