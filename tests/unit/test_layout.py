"""Nothing stray at the root: every tracked top-level file or folder is one the layout names
(docs/development.md, "Layout"). A stray file once sat at the root for weeks (a shell fragment's output)."""

from __future__ import annotations

import subprocess

import pytest

from scripts import REPO_ROOT

# The layout: what each top-level entry is for. A new one is added here and in docs/development.md.
LAYOUT = {
    ".ci": "CI's entry point (.ci/run: the README's test command, then the container checks)",
    ".dockerignore": "what the image build leaves out",
    ".env.example": "every setting with its default (generated from handler/settings_table.py)",
    ".gitignore": "build outputs and local state",
    "Dockerfile": "the deployable image",
    "README.md": "the front door",
    "SECURITY.md": "the threat model and how to report a vulnerability",
    "config": "templates rendered at start, the API contracts, metrics",
    "deploy": "Kubernetes and KServe manifests",
    "docs": "documentation by task",
    "handler": "the TorchServe handler (shipped inside the archive)",
    "model_inputs": "your own checkpoint, labels and golden set for the image build",
    "model_store": "built archives (only .gitkeep is tracked)",
    "pyproject.toml": "project metadata and pytest's configuration",
    "requirements": "pinned and locked dependencies",
    "scripts": "the tools: serve, test, build, manage, client, bench, container checks",
    "tests": "the pytest suite",
    "web": "the browser page",
}


def tracked_top_level() -> set[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return {name.split("/", 1)[0] for name in listed.decode().split("\0") if name}


def test_every_tracked_top_level_entry_is_in_the_layout():
    stray = sorted(tracked_top_level() - set(LAYOUT))
    assert not stray, f"tracked at the root but not in the layout (tests/unit/test_layout.py, docs/development.md): {stray}"


def test_the_layout_is_documented():
    development = REPO_ROOT / "docs" / "development.md"
    if not development.exists():
        pytest.fail("docs/development.md (the layout and where to change things) is missing")
    text = development.read_text(encoding="utf-8")
    present = tracked_top_level()
    undocumented = sorted(name for name in LAYOUT if name in present and not name.startswith(".")
                          and name not in text)
    assert not undocumented, f"docs/development.md does not name {undocumented}"
