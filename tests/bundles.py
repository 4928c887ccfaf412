"""The report bundles a test run produced, each checked against what it promises: the run summary
against the published schema (schemas/report-2.schema.json), its exports against theirs, the index
linking it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import referencing

from runbook import exports, schemas

EXPORTS = (".servicenow.json", ".cdevent.json")
CLOSE_CODES = {"successful", "successful_issues", "unsuccessful"}
# The CDEvents spec's own schemas (the `schemas/` folder of cdevents/spec at tag v0.4.1). No package
# on the registries ships them, so they are not vendored here: point this variable at a checkout to
# validate against them; without it the event is checked for the fields those schemas require.
CDEVENTS_SCHEMAS = "CDEVENTS_SPEC_SCHEMAS"
CDEVENT_SCHEMA_FILES = {exports.CDEVENT_TYPES["upgraded"]: "serviceupgraded.json",
                        exports.CDEVENT_TYPES["rolledback"]: "servicerolledback.json"}


def read_summaries(folder: Path) -> list[dict]:
    """Every run summary in ``folder``, oldest first, each checked with its exports and the index."""
    found = []
    for path in sorted(folder.glob("*.json")):
        if not path.name.endswith(EXPORTS):
            summary = json.loads(path.read_text())
            check_bundle(summary)
            found.append(summary)
    return found


def check_bundle(summary: dict) -> None:
    assert not schemas.problems(schemas.REPORT, summary), schemas.problems(schemas.REPORT, summary)
    artifacts = summary["artifacts"]
    assert Path(artifacts["html"]).name in Path(artifacts["index"]).read_text()
    if artifacts["servicenow"]:
        check_servicenow(json.loads(Path(artifacts["servicenow"]).read_text()), summary)
    if artifacts["cdevent"]:
        check_cdevent(json.loads(Path(artifacts["cdevent"]).read_text()))


def check_servicenow(change: dict, summary: dict) -> None:
    for field in ("short_description", "implementation_plan", "backout_plan", "test_plan", "start_date", "end_date",
                  "close_code", "close_notes"):
        assert change[field], field
    assert change["close_code"] in CLOSE_CODES and summary["verdict"] in change["short_description"]
    # One backout line per stage of the operation that ran (the release's, or a component's).
    assert change["backout_plan"].count(" fails -> ") == len(change["implementation_plan"].splitlines())


def official_cdevents_validator(event_type: str) -> jsonschema.Draft202012Validator | None:
    folder = os.environ.get(CDEVENTS_SCHEMAS)
    if not folder:
        return None
    documents = [json.loads(path.read_text()) for path in Path(folder).rglob("*.json")]
    registry = referencing.Registry().with_resources(
        (document["$id"], referencing.Resource.from_contents(document)) for document in documents if "$id" in document)
    schema = json.loads((Path(folder) / CDEVENT_SCHEMA_FILES[event_type]).read_text())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def check_cdevent(event: dict) -> None:
    context, subject = event["context"], event["subject"]
    assert context["type"] in CDEVENT_SCHEMA_FILES and context["version"] == exports.CDEVENTS_SPEC
    validator = official_cdevents_validator(context["type"])
    if validator is not None:
        errors = [error.message for error in validator.iter_errors(event)]
        assert not errors, errors
        return
    assert all(context[field] for field in ("version", "id", "source", "type", "timestamp"))
    assert subject["type"] == "service" and subject["id"]
    assert subject["content"]["environment"]["id"] and subject["content"]["artifactId"].startswith("pkg:")
