"""scripts/docs/format_json.py: readable JSON that parses back to the same value, small containers on one line."""

from __future__ import annotations

import json
import re

import pytest

from scripts.docs.format_json import format_json, main

DOCUMENT = {
    "short": {"$ref": "#/components/schemas/Error"},
    "long": {"description": "x" * 150, "type": "string"},
    "list": [{"a": 1}, {"b": [1, 2, 3]}],
    "empty": {"object": {}, "array": []},
    "text": "ünïcode \"quoted\"",
}


@pytest.mark.parametrize("width", [10, 40, 120, 1000])
def test_output_parses_back_to_the_same_value_and_ends_with_a_newline(width):
    text = format_json(DOCUMENT, width)
    assert json.loads(text) == DOCUMENT and text.endswith("}\n")


def test_a_container_that_fits_stays_on_its_line_and_one_that_does_not_is_indented_by_one():
    lines = format_json(DOCUMENT, 120).splitlines()
    assert ' "short": {"$ref": "#/components/schemas/Error"},' in lines
    assert ' "long": {' in lines and '  "type": "string"' in lines and ' },' in lines
    assert ' "empty": {"object": {}, "array": []},' in lines


def test_no_line_is_wider_than_the_width_unless_it_holds_one_string_member():
    width = 40
    string = r'"(?:[^"\\]|\\.)*"'
    lines = format_json(DOCUMENT, width).splitlines()
    assert any(len(line) > width for line in lines)  # the 150-character description
    for line in lines:
        assert len(line) <= width or re.fullmatch(rf" *{string}: {string},?", line), line


def test_check_mode_reports_without_writing_and_the_default_mode_rewrites(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(DOCUMENT, indent=2))
    before = path.read_text()
    assert main(["--check", str(path)]) == 1 and path.read_text() == before
    assert main([str(path)]) == 0 and path.read_text() == format_json(DOCUMENT)
    assert main(["--check", str(path)]) == 0
