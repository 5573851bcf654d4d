"""Write docs/configuration.md and .env.example from the one settings table.

    python -m scripts.docs.settings_reference            # rewrite both files
    python -m scripts.docs.settings_reference --check    # exit 1, naming each stale file

Both files are generated from handler/settings_table.py (name, default, rule, help), so a new
setting or a changed default reaches the docs by rerunning this command, and
tests/unit/test_docs.py fails while either file is stale.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

from handler.settings_table import SETTINGS, Rule, Setting
from scripts import REPO_ROOT

CONFIGURATION_MD = Path("docs/configuration.md")
ENV_EXAMPLE = Path(".env.example")
COMMAND = "python -m scripts.docs.settings_reference"

CONFIGURATION_INTRO = f"""\
# Configuration

<!-- Generated from handler/settings_table.py by `{COMMAND}`: edit the table there, then rerun it. -->

Every setting is an environment variable or a line of a `.env` file in the repository root
(`ENV_FILE` names another file); the environment wins over the file.
[`.env.example`](../.env.example) lists every setting with its default and is generated from the
same table. At start the supervisor checks every value (a bad one stops the start with one line
naming the setting and the value) and renders them into `RUN_DIR/config/config.properties` and
`RUN_DIR/config/nginx.conf`, which stay readable.

```bash
PORT=8000 WORKERS=2 scripts/serve.sh
```

- **Valid values**: the rule checked at start (ranges include both ends). For a text setting the
  supervisor (`scripts/service/settings.py`) checks its form: an address, a port or `auto`, a
  path nginx and TorchServe can quote, API keys.
- **Worker**: the handler in each TorchServe worker reads it too (the supervisor passes it on); the
  other settings configure nginx, TorchServe or the supervisor itself.

The measurements behind the defaults are in [performance.md](performance.md#why-these-defaults);
what each limit does to a request is in [api.md](api.md#errors).

| Setting | Default | Valid values | Worker | Meaning |
|---|---|---|---|---|
"""

ENV_EXAMPLE_INTRO = f"""\
# The service's settings: copy this file to .env and edit it; environment variables override it.
# Every setting is here with its default. Generated from handler/settings_table.py by
# `{COMMAND}`; docs/configuration.md has the same table.
"""


def _number(value: float | None) -> str:
    if value is None:
        return "-inf"
    return str(int(value)) if float(value).is_integer() else str(value)


def valid_values(rule: Rule, markdown: bool) -> str:
    """The rule in words: 'integer 1-65535', 'one of fp32, int8', 'text'."""
    if rule.kind in ("int", "float"):
        kind = "integer" if rule.kind == "int" else "number"
        dash = "–" if markdown else "-"
        return f"{kind} {_number(rule.low)}{dash}{_number(rule.high)}"
    if rule.kind == "choice":
        shown = [f"`{c}`" if markdown else c for c in rule.choices]
        return "one of " + ", ".join(shown)
    return "text"


def _markdown_cell(text: str) -> str:
    """Text safe in a table cell: pipes escaped, and angle brackets outside code spans (a
    placeholder such as <PORT> would otherwise be read as an HTML tag and vanish)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts lie outside code spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def configuration_row(setting: Setting) -> str:
    default = f"`{setting.default}`" if setting.default else "(empty)"
    worker = "yes" if setting.rule.worker else ""
    cells = (f"`{setting.name}`", default, valid_values(setting.rule, markdown=True), worker,
             _markdown_cell(setting.help))
    return "| " + " | ".join(cells) + " |"


def render_configuration(settings: Iterable[Setting] = SETTINGS) -> str:
    """docs/configuration.md: the introduction, then one table row per setting, in table order."""
    return CONFIGURATION_INTRO + "".join(configuration_row(s) + "\n" for s in settings)


def render_env_example(settings: Iterable[Setting] = SETTINGS) -> str:
    """.env.example: each setting's help and valid values as comments, then NAME=default."""
    blocks = [ENV_EXAMPLE_INTRO]
    for setting in settings:
        comment = setting.help
        if setting.rule.kind != "text":  # a text setting's form is in its help
            comment += f" ({valid_values(setting.rule, markdown=False)})"
        wrapped = textwrap.fill(comment, width=98, initial_indent="# ", subsequent_indent="# ",
                                break_long_words=False, break_on_hyphens=False)
        blocks.append(f"{wrapped}\n{setting.name}={setting.default}\n")
    return "\n".join(blocks)


def generated_files() -> dict[Path, str]:
    """Each generated file (relative to the repository root) and the text it must hold."""
    return {CONFIGURATION_MD: render_configuration(), ENV_EXAMPLE: render_env_example()}


def stale_files(root: Path = REPO_ROOT) -> list[Path]:
    """The generated files under ``root`` that are missing or differ from what would be written."""
    stale = []
    for relative, text in generated_files().items():
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(relative)
    return stale


def write_files(root: Path = REPO_ROOT) -> list[Path]:
    """Write every generated file that changed; returns those written."""
    written = []
    for relative in stale_files(root):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generated_files()[relative], encoding="utf-8")
        written.append(relative)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.docs.settings_reference",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and name each file that is stale")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository root (default: this checkout)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.root)
        for relative in stale:
            print(f"stale: {relative} differs from handler/settings_table.py; run {COMMAND}", file=sys.stderr)
        return 1 if stale else 0
    for relative in write_files(args.root):
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
