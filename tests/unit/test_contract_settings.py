"""config/openapi.json: within its size budget, the same operations, valid OpenAPI, formatted for people,
and no setting's default copied into it unchecked.

The contract names settings (`MAX_FILE_SIZE`, `DEFAULT_TOP_K`, ...) instead of quoting their values. Where a
schema must hold a number or name that is a setting's default (a `maxItems`, an `example` schemathesis sends),
TIED_TO_SETTINGS below holds it and a test fails when it drifts from handler/settings_table.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from handler.settings_table import BY_NAME
from scripts import REPO_ROOT
from scripts.docs.format_json import format_json

CONTRACT_FILE = REPO_ROOT / "config" / "openapi.json"
TEXT = CONTRACT_FILE.read_text(encoding="utf-8")
CONTRACT = json.loads(TEXT)
# Issue 19's budget. The KServe v1 routes (3 operations, 4 schemas: +4.1 KB) fit after X-Request-ID, which
# every response carries, was said once (info.description) instead of in each response.
MAX_BYTES = 40_000
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# (path, method) of every operation: the 76.7 KB contract's, recorded before it was restructured with $ref
# components, and the KServe v1 routes. A new route is a deliberate change: add it here, within the budget.
OPERATIONS = frozenset({
    ("/predict", "post"),
    ("/health", "get"),
    ("/info", "get"),
    ("/openapi.json", "get"),
    ("/live", "get"),
    ("/v2", "get"),
    ("/v2/health/live", "get"),
    ("/v2/health/ready", "get"),
    ("/v2/models/{model_name}", "get"),
    ("/v2/models/{model_name}/versions/{model_version}", "get"),
    ("/v2/models/{model_name}/ready", "get"),
    ("/v2/models/{model_name}/versions/{model_version}/ready", "get"),
    ("/v2/models/{model_name}/infer", "post"),
    ("/v2/models/{model_name}/versions/{model_version}/infer", "post"),
    ("/v1/models", "get"),
    ("/v1/models/{model_name}", "get"),
    ("/v1/models/{model_name}:predict", "post"),
})

# JSON pointer -> (setting, how its default reads there). Schemathesis sends the examples in its explicit
# phase, so they must be what a default install serves.
TIED_TO_SETTINGS = {
    "/components/schemas/SeveralImages/properties/images/maxItems": ("MAX_IMAGES_PER_REQUEST", int),
    "/components/schemas/V1PredictRequest/properties/instances/maxItems": ("MAX_IMAGES_PER_REQUEST", int),
    "/components/parameters/ModelName/example": ("MODEL_NAME", str),
    "/components/parameters/ModelVersion/example": ("MODEL_VERSION", str),
    "/servers/0/url": ("PORT", lambda port: f"http://localhost:{port}"),
}

# Upper bounds, defaults and examples that belong to the data, not to a setting: pointer -> why.
INTRINSIC = {
    "/components/schemas/Prediction/properties/probability/maximum": "a probability",
    "/components/schemas/Info/properties/default/maxItems": "exactly one default version",
    "/components/schemas/V1Models/properties/models/maxItems": "the one model served",
    "/components/schemas/V2InferenceRequest/properties/inputs/items/properties/name/example": "the input tensor",
    "/components/schemas/V2InferenceRequest/properties/inputs/items/properties/datatype/example": "its datatype",
    "/components/schemas/V2InferenceRequest/properties/outputs/items/properties/name/example": "the output tensor",
}
# Keywords whose value could be a copy of a setting's default or upper bound.
VALUE_KEYWORDS = {"default", "maximum", "exclusiveMaximum", "maxItems", "maxLength", "maxProperties", "example",
                  "examples"}
PROSE_KEYWORDS = {"description", "summary", "title"}


def walk(node: Any, pointer: str = "") -> Iterator[tuple[str, str, Any]]:
    """(pointer of the parent, key, value) for every member of every object in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield pointer, key, value
            yield from walk(value, f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{pointer}/{index}")


def resolve(pointer: str) -> Any:
    node = CONTRACT
    for part in pointer.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def prose() -> list[tuple[str, str]]:
    return [(f"{where}/{key}", text) for where, key, text in walk(CONTRACT)
            if key in PROSE_KEYWORDS and isinstance(text, str)]


def test_contract_fits_its_size_budget():
    size = len(TEXT.encode("utf-8"))
    assert size <= MAX_BYTES, f"config/openapi.json is {size} bytes, over {MAX_BYTES}: share it through $ref"


def test_contract_has_exactly_the_recorded_operations():
    operations = {(path, method) for path, item in CONTRACT["paths"].items() for method in item
                  if method in HTTP_METHODS}
    assert operations == OPERATIONS, (f"added: {sorted(operations - OPERATIONS)}, "
                                      f"missing: {sorted(OPERATIONS - operations)}")


def test_contract_is_valid_openapi():
    validate(CONTRACT)


def test_contract_is_formatted_for_people():
    assert TEXT == format_json(CONTRACT), "run: .venv/bin/python -m scripts.docs.format_json config/openapi.json"


def test_every_reference_resolves_and_every_component_is_used():
    references = {value for _, key, value in walk(CONTRACT) if key == "$ref"}
    assert all(ref.startswith("#/") for ref in references), sorted(references)
    for ref in references:
        resolve(ref[1:])  # KeyError names a dangling reference
    components = {f"#/components/{kind}/{name}" for kind, members in CONTRACT["components"].items()
                  for name in members}
    unused = sorted(components - references)
    assert not unused, f"components nothing refers to: {unused}"


@pytest.mark.parametrize("pointer", sorted(TIED_TO_SETTINGS))
def test_value_tied_to_a_setting_is_its_default(pointer):
    name, reads_as = TIED_TO_SETTINGS[pointer]
    assert resolve(pointer) == reads_as(BY_NAME[name].parse()), f"{pointer} drifted from {name}'s default"


def test_every_bound_default_or_example_is_tied_to_a_setting_or_intrinsic():
    # A key right under "properties" names a field (Info's `default`), not a keyword.
    found = {f"{where}/{key}" for where, key, _ in walk(CONTRACT)
             if key in VALUE_KEYWORDS and not where.endswith("/properties")}
    accounted = {pointer for pointer in [*TIED_TO_SETTINGS, *INTRINSIC]
                 if pointer.rsplit("/", 1)[1] in VALUE_KEYWORDS}
    assert found == accounted, (f"unexplained: {sorted(found - accounted)} (tie each to a setting in TIED_TO_SETTINGS, "
                                f"or say in INTRINSIC why it is none); gone: {sorted(accounted - found)}")


def test_prose_names_settings_instead_of_quoting_their_defaults():
    numbers = {name: setting.default for name, setting in BY_NAME.items()
               if re.fullmatch(r"\d+(\.\d+)?", setting.default) and len(setting.default) >= 2}
    for where, text in prose():
        assert not re.search(r"\bdefault\b\W{0,3}\d", text, re.IGNORECASE), (where, text)
        assert not re.search(r"\d\s*[KMG]i?B\b", text), (where, text)
        for name, default in numbers.items():
            assert not re.search(rf"(?<![\w.]){re.escape(default)}(?![\w.])", text), \
                f"{where} quotes {name}'s default {default}: write `{name}`"


def test_settings_named_in_prose_exist():
    named = {(where, name) for where, text in prose() for name in re.findall(r"`([A-Z][A-Z0-9_]{2,})`", text)}
    assert named, "the contract names its settings in backticks"
    unknown = sorted((where, name) for where, name in named if name not in BY_NAME)
    assert not unknown, f"not settings in handler/settings_table.py: {unknown}"
