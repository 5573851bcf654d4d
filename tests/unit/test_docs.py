"""The docs: a short README, links that resolve, generated reference that is current, no copied defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handler.settings_table import SETTINGS
from scripts import REPO_ROOT
from scripts.docs import settings_reference

README = REPO_ROOT / "README.md"
README_LIMIT_BYTES = 15_000
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", flags=re.M)


def prose(markdown: str) -> str:
    """The text outside fenced code blocks and inline code, where links are links."""
    return INLINE_CODE.sub("", FENCE.sub("", markdown))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor, with GitHub's -1, -2 ... for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        result.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return result


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page.read_text(encoding="utf-8")))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: are not checked


def test_github_slugs_match_githubs_rules():
    assert github_slug("POST /predict") == "post-predict"
    assert github_slug("The browser page: GET /") == "the-browser-page-get-"
    assert github_slug("Python client: scripts/client/predict.py") == "python-client-scriptsclientpredictpy"
    assert github_slug("Protocol v2 (KServe v2, Triton)") == "protocol-v2-kserve-v2-triton"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_readme_is_a_front_door():
    size = len(README.read_bytes())
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes; move detail into docs/ (limit {README_LIMIT_BYTES})"
    text = README.read_text(encoding="utf-8")
    # The two commands, exactly as they are named, and a link to every page of docs/.
    assert "scripts/serve.sh" in text and "scripts/test.sh" in text
    for page in DOCS:
        assert f"(docs/{page.name}" in text, f"README.md does not link docs/{page.name}"


def test_there_are_pages_to_check():
    names = {page.name for page in DOCS}
    assert {"api.md", "configuration.md", "operations.md", "own-model.md", "deployment.md",
            "performance.md", "development.md"} <= names
    assert all(relative_links(page) for page in (README, REPO_ROOT / "docs/api.md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor:
            if resolved.suffix != ".md":
                broken.append(f"{target}: an anchor into a file that is not markdown")
            elif anchor not in anchors(resolved.read_text(encoding="utf-8")):
                broken.append(f"{target}: no heading with the anchor #{anchor} in {resolved.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_generated_files_are_current():
    stale = settings_reference.stale_files()
    assert not stale, f"stale: {', '.join(map(str, stale))}; run python -m scripts.docs.settings_reference"


def test_check_names_each_stale_file_and_a_write_makes_them_current(tmp_path, capsys):
    assert settings_reference.main(["--check", "--root", str(tmp_path)]) == 1  # neither file there
    err = capsys.readouterr().err
    assert "stale: docs/configuration.md" in err and "stale: .env.example" in err
    assert settings_reference.main(["--root", str(tmp_path)]) == 0
    assert settings_reference.main(["--check", "--root", str(tmp_path)]) == 0
    env_example = tmp_path / ".env.example"
    env_example.write_text(env_example.read_text().replace("PORT=5000", "PORT=5001"))
    capsys.readouterr()
    assert settings_reference.main(["--check", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err.count("stale:") == 1


def test_the_generated_reference_shows_every_setting_and_rule():
    markdown = settings_reference.render_configuration()
    env_example = settings_reference.render_env_example()
    for setting in SETTINGS:
        shown = f"`{setting.default}`" if setting.default else "(empty)"
        row = next(line for line in markdown.splitlines() if line.startswith(f"| `{setting.name}` |"))
        assert row.startswith(f"| `{setting.name}` | {shown} | {settings_reference.valid_values(setting.rule, True)} |")
        assert row.count(" | ") == 4, f"a '|' in {setting.name}'s help breaks the table"
        assert f"\n{setting.name}={setting.default}\n" in env_example
    # Placeholders such as <PORT> would vanish as HTML tags outside code spans.
    assert "&lt;PORT&gt;" in markdown and "<PORT>" not in prose(markdown)


# Prose names a setting instead of restating its number; performance.md records the settings a
# run used, and configuration.md is where the defaults are.
RESTATING_ALLOWED = {"configuration.md", "performance.md"}
NUMERIC_SETTINGS = [s for s in SETTINGS if s.rule.kind in ("int", "float") and s.name != "PORT"]


@pytest.mark.parametrize("page", [p for p in PAGES if p.name not in RESTATING_ALLOWED],
                         ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_prose_names_defaults_instead_of_restating_them(page):
    text = page.read_text(encoding="utf-8")
    copies = []
    for setting in NUMERIC_SETTINGS:
        pattern = rf"`{setting.name}`\s*(?:=|\(|:|is)?\s*`?{re.escape(setting.default)}(?![\w.])"
        copies += [match.group(0) for match in re.finditer(pattern, text)]
    assert not copies, f"{page.name} restates defaults: {copies}"


def test_copied_command_line_defaults_match_the_code():
    """Defaults of the tools (not settings) quoted in the docs: a drift fails here."""
    from handler.golden import DEFAULT_TOLERANCE
    from scripts.client.predict import BACKOFF_BASE_S, BACKOFF_CAP_S, build_parser

    api = (REPO_ROOT / "docs/api.md").read_text(encoding="utf-8")
    client = build_parser()
    for option, dest in (("--format", "format"), ("--concurrency N", "concurrency"),
                         ("--timeout S", "timeout"), ("--retries N", "retries")):
        default = client.get_default(dest)
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        assert f"| `{option}` | `{shown}` |" in api, f"docs/api.md: {option}'s default is {shown}"
    assert f"(bounded by {BACKOFF_CAP_S:g} s); without one, after {BACKOFF_BASE_S:g} s," in " ".join(api.split())
    own_model = (REPO_ROOT / "docs/own-model.md").read_text(encoding="utf-8")
    assert f"`--golden-tolerance` (default {DEFAULT_TOLERANCE:g};" in own_model


# GRPC_PORT's default is quoted where a reader needs the number itself: the README's routes table, the
# examples (a client needs a port) and the log line a second instance prints. Each quote is found by its
# context, not by the number, so a changed default fails here until the docs follow; and a page holding
# the default anywhere else fails too, so every copy is one this list knows about.
GRPC_PORT_QUOTES = {
    "README.md": [r"on port (\d+) by default"],
    "docs/api.md": [r'grpcclient\.InferenceServerClient\("localhost:(\d+)"\)', r"kserve_grpc_check\.py --url localhost:(\d+)"],
    "docs/deployment.md": [r"-p (\d+):\d+ --read-only", r"-p \d+:(\d+) --read-only", r"# (\d+): gRPC",
                           r"(\d+) \(gRPC, `GRPC_PORT`\)", r"port (\d+) to the container port `grpc`"],
    "docs/operations.md": [r"`GRPC_PORT (\d+) is in use \(another instance\?\)"],
}


@pytest.mark.parametrize("name", sorted(GRPC_PORT_QUOTES))
def test_grpc_port_default_quoted_where_a_number_is_needed(name):
    default = next(s for s in SETTINGS if s.name == "GRPC_PORT").default
    text = (REPO_ROOT / name).read_text(encoding="utf-8")
    quoted = [value for pattern in GRPC_PORT_QUOTES[name] for value in re.findall(pattern, text)]
    assert len(quoted) >= len(GRPC_PORT_QUOTES[name]), f"{name}: a quote of GRPC_PORT's default is gone"
    assert set(quoted) == {default}, f"{name} quotes GRPC_PORT as {sorted(set(quoted))}; its default is {default}"
    elsewhere = len(re.findall(rf"(?<![\d.]){default}(?![\d.])", text)) - len(quoted)
    assert elsewhere == 0, f"{name} holds GRPC_PORT's default {default} {elsewhere} more time(s): name the setting"
