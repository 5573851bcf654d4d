"""scripts/bootstrap.sh recovers from an interrupted first set-up.

A Ctrl-C during the first `python -m venv` leaves an interpreter without pip; one during the
package install leaves an environment without the stamp. Either way the next run must start
over where needed, and a failed install must never leave a stamp saying it succeeded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

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


# --------------------------------------------------------------- the machines users have
def bootstrap_function(name: str, call: str, path: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run one of bootstrap.sh's functions (its definition cut from the file) with PATH = ``path``."""
    text = (REPO / "scripts" / "bootstrap.sh").read_text()
    start = text.index(f"{name}() {{")
    body = text[start:text.index("\n}\n", start) + 3]
    script = tmp_path / f"{name}.sh"
    script.write_text("PYTHON_RANGE=(3.11 3.13)\n" + body + call + "\n")
    return subprocess.run([shutil.which("bash"), str(script)], env={"PATH": path}, capture_output=True, text=True,
                          timeout=60)


def fake_command(directory: Path, name: str, output: str, code: int = 0) -> None:
    directory.mkdir(exist_ok=True)
    script = directory / name
    script.write_text(f"#!/bin/sh\ncat <<'OUT' >&2\n{output}\nOUT\nexit {code}\n")
    script.chmod(0o755)


@pytest.mark.parametrize("banner, major", [
    ('openjdk version "17.0.15" 2025-04-15', "17"),   # Debian 12
    ('openjdk version "21.0.8" 2025-07-15', "21"),    # Debian 13, Ubuntu 24.04
    ('openjdk version "25" 2025-09-16', "25"),
    ('java version "1.8.0_412"', "1"),               # Java 8: refused by the caller
])
def test_java_major_reads_every_versioning_scheme(tmp_path, banner, major):
    fake_command(tmp_path / "bin", "java", banner)
    result = bootstrap_function("java_major", "java_major", f"{tmp_path / 'bin'}:/usr/bin:/bin", tmp_path)
    assert result.stdout.strip() == major, result.stderr


def test_java_major_is_empty_without_java(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sed", "head"):  # what the function needs besides java
        (bin_dir / tool).symlink_to(shutil.which(tool))
    result = bootstrap_function("java_major", "java_major", str(bin_dir), tmp_path)
    assert result.returncode == 0 and result.stdout == "", result.stderr


def test_nginx_package_is_the_one_this_system_has(tmp_path):
    """Debian 13 still resolves nginx-light; where a system has only nginx, nginx is installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    policy = bin_dir / "apt-cache"
    policy.write_text('#!/bin/sh\ncase "$2" in\n  nginx-light) echo "  Candidate: (none)";;\n'
                      '  nginx) echo "  Candidate: 1.26.3-3";;\nesac\n')
    policy.chmod(0o755)
    result = bootstrap_function("installable", "installable nginx-light nginx", f"{bin_dir}:/usr/bin:/bin", tmp_path)
    assert result.stdout.strip() == "nginx"
    policy.write_text('#!/bin/sh\necho "  Candidate: 1.22.1-9"\n')
    result = bootstrap_function("installable", "installable nginx-light nginx", f"{bin_dir}:/usr/bin:/bin", tmp_path)
    assert result.stdout.strip() == "nginx-light"


@pytest.mark.parametrize("version, accepted", [("3.10", False), ("3.11", True), ("3.12", True), ("3.13", True),
                                               ("3.14", False)])
def test_python_range_is_3_11_to_3_13(tmp_path, version, accepted):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python-fake"
    minor = version.split(".")[1]
    # A stand-in interpreter that runs the real check with its version_info replaced.
    fake.write_text(f'#!/bin/sh\nexec python3 -c "import sys; code = sys.argv.pop(1); '
                    f'sys.version_info = (3, {minor}, 0); exec(code)" "$2" "$3" "$4"\n')
    fake.chmod(0o755)
    result = bootstrap_function("python_in_range", "python_in_range python-fake", f"{bin_dir}:/usr/bin:/bin",
                                tmp_path)
    assert (result.returncode == 0) is accepted, result.stderr


def test_old_java_is_refused_in_one_line(tmp_path):
    fake_command(tmp_path / "bin", "java", 'openjdk version "11.0.24" 2024-07-16')
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "VENV_DIR": str(tmp_path / "venv")}
    result = subprocess.run(["bash", "-c", f"source '{REPO}/scripts/bootstrap.sh' runtime"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Java 11" in result.stderr and "needs Java 17 or newer" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_python_outside_the_range_is_refused_in_one_line(tmp_path):
    env = {**os.environ, "PYTHON": "python3.10-does-not-exist", "VENV_DIR": str(tmp_path / "venv")}
    result = subprocess.run(["bash", "-c", f"source '{REPO}/scripts/bootstrap.sh' runtime"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "PYTHON=python3.10-does-not-exist is not Python 3.11-3.13" in result.stderr


def test_the_test_profile_names_git_and_curl_when_a_user_cannot_install_them(tmp_path):
    """The suite copies the checkout with git and runs the docs' curl examples: on a system without them
    (a minimal Debian), an unprivileged user is told to install them, one line, before anything else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for tool in Path(directory).iterdir() if Path(directory).is_dir() else ():
            target = bin_dir / tool.name
            if tool.name not in ("git", "curl", "id") and not target.exists() and os.access(tool, os.X_OK):
                target.symlink_to(tool)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")  # not root: nothing is apt-installed
    (bin_dir / "id").chmod(0o755)
    for tool in ("chromium", "nginx"):  # present, so only git and curl are missing
        if not (bin_dir / tool).exists():
            fake_command(bin_dir, tool, "")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "VENV_DIR": str(tmp_path / "venv"), "LANG": "C.UTF-8"}
    result = subprocess.run(["bash", "-c", f"source '{REPO}/scripts/bootstrap.sh' test"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "missing:" in line and "git" in line and "curl" in line, result.stderr
    assert not (tmp_path / "venv").exists()
