"""Format a JSON document for people: one space of indent per level, and any object or array that
fits within WIDTH columns (indent and key included) written on its one line.

config/openapi.json is written this way: plain one-key-per-line indenting spends most of its bytes
on lines that hold only `{`, `}` or a `$ref`, and the contract must stay within its size budget
(tests/unit/test_contract_settings.py) while staying readable by hand.

    python -m scripts.docs.format_json config/openapi.json          # rewrite in place
    python -m scripts.docs.format_json --check config/openapi.json  # exit 1 if not formatted
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

WIDTH = 120  # the line length of this repository's Python


def format_json(value: Any, width: int = WIDTH) -> str:
    """``value`` as readable JSON text, ending with a newline; parses back to an equal value."""
    return _render(value, 0, 0, width) + "\n"


def _render(value: Any, level: int, taken: int, width: int) -> str:
    """``value`` at nesting ``level``, ``taken`` columns of its first line already used by its key."""
    if not isinstance(value, (dict, list)) or not value:
        return json.dumps(value)
    one_line = json.dumps(value)
    if level + taken + len(one_line) <= width:
        return one_line
    pad = " " * (level + 1)
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            label = json.dumps(key) + ": "
            lines.append(pad + label + _render(item, level + 1, len(label), width))
        return "{\n" + ",\n".join(lines) + "\n" + " " * level + "}"
    lines = [pad + _render(item, level + 1, 0, width) for item in value]
    return "[\n" + ",\n".join(lines) + "\n" + " " * level + "]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report files that are not formatted")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    unformatted = []
    for path in args.files:
        text = path.read_text(encoding="utf-8")
        formatted = format_json(json.loads(text))
        if text != formatted:
            unformatted.append(path)
            if not args.check:
                path.write_text(formatted, encoding="utf-8")
    for path in unformatted:
        print(f"{path}: {'not formatted' if args.check else 'reformatted'}", file=sys.stderr)
    return 1 if args.check and unformatted else 0


if __name__ == "__main__":
    sys.exit(main())
