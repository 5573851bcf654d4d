"""scripts/bootstrap.sh recovers from an interrupted first set-up.

A Ctrl-C during the first `python -m venv` leaves an interpreter without pip; one during the
package install leaves an environment without the stamp. Either way the next run must start
over where needed, and a failed install must never leave a stamp saying it succeeded.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_bootstrap(venv: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    # No package index and no local wheels: the install fails at once, like an interrupted one.
    empty = tmp_path / "no-wheels"
    empty.mkdir(exist_ok=True)
    env = {**os.environ, "VENV_DIR": str(venv), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(empty),
           "PIP_CONFIG_FILE": os.devnull}
    return subprocess.run(["bash", "-c", f"source '{REPO}/scripts/bootstrap.sh' runtime"], env=env,
                          capture_output=True, text=True, timeout=300)


def test_half_made_environment_is_made_again_and_a_failed_install_leaves_no_stamp(tmp_path):
    venv = tmp_path / "venv with space"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / ".requirements-stamp").write_text("stale-runtime\n")  # from an older requirements set
    assert subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True).returncode != 0

    result = run_bootstrap(venv, tmp_path)

    assert result.returncode != 0  # the install could not finish ...
    assert "installing Python packages" in result.stderr
    pip = subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True, text=True)
    assert pip.returncode == 0, "the half-made environment was not made again"  # ... but pip works now
    assert not (venv / ".requirements-stamp").exists(), "a failed install must not leave a stamp"


def test_a_directory_that_is_not_an_environment_is_never_replaced(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    result = run_bootstrap(precious, tmp_path)
    assert result.returncode != 0
    assert "is not a virtual environment: refusing to replace it" in result.stderr
    assert (precious / "thesis.tex").read_text() == "years of work"
