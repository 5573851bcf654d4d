"""The repository's tools, grouped by role; each runs from the repository root as
``python -m scripts.<role>.<tool>`` (docs/development.md "Layout")."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
