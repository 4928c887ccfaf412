"""The published JSON Schemas (``schemas/``) of the run summary and the journal, and validation
against them (draft 2020-12)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
REPORT = "report-2.schema.json"
JOURNAL = "journal-1.schema.json"


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def problems(name: str, document: object) -> list[str]:
    """Each way ``document`` breaks schema ``name``, as ``<path>: <message>``; empty when it is valid."""
    errors = sorted(_validator(name).iter_errors(document), key=lambda error: list(error.absolute_path))
    return [f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message[:200]}" for error in errors]
