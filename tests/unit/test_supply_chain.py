"""The supply chain holds together (issue 22, part 3): offline, from the files alone.

- every lock (requirements/locks/) is fresh against its inputs and every entry has hashes;
- every input pin is in its lock at its version, and sets installed into one venv agree on every version;
- scripts/bootstrap.sh, the Dockerfile and the other venvs' scripts install only from the locks, with
  --require-hashes, and the image writes its SBOM from a throwaway venv;
- the audit (requirements/locks/audit.json) is of the current locks, and SECURITY.md decides every finding.
Each check is also run against a broken copy, so a check that cannot fail is caught.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from scripts import REPO_ROOT
from scripts.supply_chain import audit
from scripts.supply_chain.lock_sets import (AUDIT_RESULT, BY_NAME, LOCK_SETS, SHARED_VENV, canonical_name,
                                            logical_lines, parse_lock, pinned_versions, stale_locks)
from scripts.supply_chain.osv_local import affects, in_range

from packaging.version import Version

SECURITY = REPO_ROOT / "SECURITY.md"


def lock_text(name: str) -> str:
    return (REPO_ROOT / BY_NAME[name].lock).read_text(encoding="utf-8")


def copy_requirements(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


# ----------------------------------------------------------------------------- locks: fresh and hashed
def test_every_lock_is_fresh_and_every_entry_is_hashed():
    assert stale_locks(REPO_ROOT) == [], "rerun scripts/lock.sh"


def test_an_edited_input_makes_its_lock_stale_and_only_the_locks_that_read_it(tmp_path):
    root = copy_requirements(tmp_path)
    with (root / "requirements" / "bench.txt").open("a") as bench:
        bench.write("six==1.17.0\n")
    problems = stale_locks(root)
    assert problems == ["requirements/locks/bench.txt: stale (requirements/torch.txt, requirements/runtime.txt, "
                        "requirements/bench.txt changed since it was made)"]


def test_an_entry_without_hashes_or_a_missing_lock_is_reported(tmp_path):
    root = copy_requirements(tmp_path)
    runtime = root / BY_NAME["runtime"].lock
    runtime.write_text(runtime.read_text() + "evil-package==1.0\n")
    (root / BY_NAME["sbom"].lock).unlink()
    problems = stale_locks(root)
    assert "requirements/locks/runtime.txt: not name==version with hashes: evil-package==1.0" in problems
    assert "requirements/locks/sbom.txt: missing" in problems


def test_lock_parsing_joins_continuations_and_reads_markers():
    text = ("# header\n"
            "numpy==2.4.6 ; python_full_version < '3.12' \\\n"
            "    --hash=sha256:aa \\\n"
            "    --hash=sha256:bb\n"
            "    # via torch\n"
            "Foo_Bar==1.0 \\\n"
            "    --hash=md5:cc\n"
            "tritonclient[grpc]==2.73.0  # a comment\n")
    requirements, malformed = parse_lock(text)
    assert [(r.name, r.version, r.marker, r.hashes) for r in requirements] == [
        ("numpy", "2.4.6", "python_full_version < '3.12'", ("sha256:aa", "sha256:bb"))]
    assert malformed == ["Foo_Bar==1.0 --hash=md5:cc", "tritonclient[grpc]==2.73.0"]
    assert pinned_versions(text) == {"numpy": {"2.4.6"}, "foo-bar": {"1.0"}, "tritonclient": {"2.73.0"}}
    assert logical_lines("a \\\n b\n# c\n") == ["a b"]


def test_every_requirements_file_is_the_input_of_a_lock():
    inputs = {path for lock_set in LOCK_SETS for path in lock_set.inputs}
    files = {f"requirements/{path.name}" for path in (REPO_ROOT / "requirements").glob("*.txt")}
    assert files - inputs == set(), "add the file to scripts/supply_chain/lock_sets.py LOCK_SETS"


@pytest.mark.parametrize("lock_set", LOCK_SETS, ids=lambda s: s.name)
def test_every_input_pin_is_locked_at_its_version(lock_set):
    locked = pinned_versions(lock_text(lock_set.name))
    wrong = []
    for relative in lock_set.inputs:
        for name, versions in pinned_versions((REPO_ROOT / relative).read_text(encoding="utf-8")).items():
            if not versions <= locked.get(name, set()):
                wrong.append(f"{relative}: {name}=={versions} but the lock has {locked.get(name)}")
    assert not wrong


def shared_version_conflicts(locks: dict[str, str]) -> list[str]:
    versions = {name: pinned_versions(text) for name, text in locks.items()}
    conflicts = []
    names = list(locks)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            for package in versions[first].keys() & versions[second].keys():
                if versions[first][package] != versions[second][package]:
                    conflicts.append(f"{package}: {first} {sorted(versions[first][package])}, "
                                     f"{second} {sorted(versions[second][package])}")
    return conflicts


def test_sets_installed_into_one_venv_agree_on_every_shared_version():
    locks = {name: lock_text(name) for name in SHARED_VENV}
    assert shared_version_conflicts(locks) == []
    locks["bench"] = locks["bench"].replace("\nnumpy==", "\nnumpy==0.0.0.dev0-was-")
    assert shared_version_conflicts(locks), "a disagreement must be found"


def test_the_locks_hold_pytorch_from_the_default_index_with_its_cuda_wheels():
    runtime = pinned_versions(lock_text("runtime"))
    torch_lock = pinned_versions(lock_text("torch"))
    assert runtime["torch"] == torch_lock["torch"] and "+" not in next(iter(runtime["torch"]))  # no +cpu build
    assert any(name.startswith("nvidia-") for name in torch_lock)


# ----------------------------------------------------------------------------- installers use the locks
def function_body(script: Path, name: str) -> str:
    text = script.read_text(encoding="utf-8")
    start = text.index(f"{name}() {{")
    return text[start:text.index("\n}\n", start)]


def pip_installs(text: str) -> list[str]:
    """Each `pip install` command, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if re.search(r"\bpip install\b", line)]


def unchecked_installs(text: str) -> list[str]:
    """pip installs that are not --require-hashes from requirements/locks/ only."""
    bad = []
    for command in pip_installs(text):
        files = re.findall(r"-r\s+(\S+)", command)
        if "--require-hashes" not in command or not files or any("requirements/locks/" not in f for f in files):
            bad.append(command)
    return bad


def test_bootstrap_installs_each_profile_from_its_lock_with_hashes_and_stamps_the_locks():
    body = function_body(REPO_ROOT / "scripts" / "bootstrap.sh", "ensure_venv")
    # $lock is only ever one of the profiles' locks:
    assert set(re.findall(r"\block=(\S+)", body)) == {"requirements/locks/runtime.txt", '"requirements/locks/$profile.txt"'}
    installs = body.replace('"$lock"', "requirements/locks/$profile.txt")
    assert len(pip_installs(installs)) == 2 and unchecked_installs(installs) == []
    stamp_lines = [line for line in body.splitlines() if "sha256sum" in line]
    assert stamp_lines and all("requirements/locks/" in line and "requirements/runtime.txt" not in line
                               for line in stamp_lines)
    assert unchecked_installs('"$VENV_DIR/bin/python" -m pip install -r requirements/runtime.txt\n')


def test_the_dockerfile_installs_only_the_locks_with_hashes():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert unchecked_installs(dockerfile) == []
    installed = re.findall(r"pip install --require-hashes -r (\S+)", dockerfile)
    assert "/app/requirements/locks/torch.txt" in installed and "/app/requirements/locks/runtime.txt" in installed
    assert "TORCH_INDEX_URL is no longer supported" in dockerfile  # refused, not silently ignored


def test_the_image_writes_its_sbom_from_a_throwaway_venv():
    dockerfile = re.sub(r"\\\n\s*", " ", (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8"))
    run = next(line for line in dockerfile.splitlines() if "cyclonedx-py" in line)
    assert run.startswith("RUN ")
    assert "python -m venv /tmp/sbom-venv" in run and run.rstrip().endswith("rm -rf /tmp/sbom-venv")
    assert "/tmp/sbom-venv/bin/pip install --require-hashes -r /app/requirements/locks/sbom.txt" in run
    assert re.search(r"cyclonedx-py environment .*-o /app/sbom\.cdx\.json /opt/venv", run)
    assert "cyclonedx" not in (REPO_ROOT / "requirements" / "runtime.txt").read_text()


def test_the_side_venvs_install_only_from_locks():
    """scripts/side_venv.sh (the KServe client's and the benchmark peer's venvs) installs pip's lock and the
    one it is given, with hashes; its stamp follows both, so a re-lock reinstalls."""
    text = (REPO_ROOT / "scripts" / "side_venv.sh").read_text(encoding="utf-8")
    assert "requirements/locks/*.txt) ;;" in text  # $LOCK is refused unless it is a lock
    assert pip_installs(text) and unchecked_installs(text.replace('"$LOCK"', "requirements/locks/LOCK.txt")) == []
    assert any('-r "$LOCK"' in command and "requirements/locks/pip.txt" in command for command in pip_installs(text))
    assert 'cat requirements/locks/pip.txt "$LOCK" | sha256sum' in text


@pytest.mark.parametrize("script, lock", [
    ("scripts/bench/benchmark.sh", "requirements/locks/bench-kserve.txt"),
    ("scripts/client/kserve_venv.sh", "requirements/locks/kserve-client.txt"),
])
def test_the_other_venvs_come_from_their_locks(script, lock):
    text = (REPO_ROOT / script).read_text(encoding="utf-8")
    assert "scripts/side_venv.sh" in text and lock in text
    assert pip_installs(text) == []  # no install of its own


# ----------------------------------------------------------------------------- the audit and its decisions
def test_the_audit_is_of_the_current_locks_and_every_finding_is_decided():
    result = json.loads((REPO_ROOT / AUDIT_RESULT).read_text(encoding="utf-8"))
    assert result["locks"] == audit.lock_digests(REPO_ROOT), \
        "a lock changed since the audit: rerun scripts/lock.sh (it audits after locking)"
    assert result["package_versions_audited"] == len(audit.locked_packages(REPO_ROOT))
    assert result["tool"].startswith("pip-audit") and result["source"]["data"]
    security = SECURITY.read_text(encoding="utf-8")
    assert audit.undecided(result["findings"], security) == []
    assert result["source"]["data"].split(",")[0] in security, "SECURITY.md does not say what the audit used"
    assert ("**Result: no findings**" in security) is (not result["findings"]), "SECURITY.md's result is out of date"


def test_an_undecided_finding_is_named():
    findings = [{"id": "PYSEC-2099-1", "aliases": ["CVE-2099-1"], "package": "demo", "version": "1.0"},
                {"id": "GHSA-aaaa-bbbb-cccc", "aliases": [], "package": "other", "version": "2.0"}]
    table = ("| advisory | package | decision |\n|---|---|---|\n"
             "| CVE-2099-1 | demo 1.0 | **not applicable**: the feature is unused |\n"
             "| GHSA-aaaa-bbbb-cccc | other 2.0 | under review |\n")
    assert audit.undecided(findings, table) == ["other 2.0: GHSA-aaaa-bbbb-cccc"]
    assert audit.decisions(table) == {"CVE-2099-1": "not applicable"}


def test_security_md_decides_every_advisory_row_it_lists():
    security = SECURITY.read_text(encoding="utf-8")
    rows = [line for line in security.splitlines() if line.startswith("|") and audit.ADVISORY_ID.search(line)]
    assert rows, "SECURITY.md lists no advisories"
    undecided_rows = [row for row in rows if not set(audit.ADVISORY_ID.findall(row)) <= audit.decisions(row).keys()]
    assert undecided_rows == []


def test_audit_inputs_never_name_a_package_twice_in_one_file():
    packages = [("numpy", "2.4.6"), ("numpy", "2.5.5"), ("scipy", "1.17.1"), ("scipy", "1.18.1"), ("six", "1.17.0")]
    chunks = audit.requirement_chunks(packages)
    assert sorted(line for chunk in chunks for line in chunk) == sorted(f"{n}=={v}" for n, v in packages)
    for chunk in chunks:
        names = [canonical_name(line.split("==")[0]) for line in chunk]
        assert len(names) == len(set(names))


# ----------------------------------------------------------------------------- the offline OSV matcher
@pytest.mark.parametrize("version, affected", [("1.9", False), ("2.3.0", True), ("2.30.0", True), ("2.31.0", False),
                                               ("3.0", True), ("3.5", False)])
def test_ecosystem_ranges_follow_osv(version, affected):
    events = [{"introduced": "2.3.0"}, {"fixed": "2.31.0"}, {"introduced": "3.0"}, {"last_affected": "3.4"}]
    assert in_range(events, Version(version)) is affected


def test_an_advisory_matches_by_listed_version_or_range_and_only_its_package():
    advisory = {"affected": [{"package": {"name": "Py_Yaml", "ecosystem": "PyPI"},
                              "ranges": [{"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "abc123"}]},
                                         {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.4"}]}],
                              "versions": ["6.0b1"]}]}
    assert affects(advisory, "py-yaml", "5.3.1")
    assert affects(advisory, "py-yaml", "6.0b1")  # listed, though outside the range
    assert not affects(advisory, "py-yaml", "6.0.4")
    assert not affects(advisory, "pyyaml", "5.3.1")
    no_fix = {"affected": [{"package": {"name": "demo", "ecosystem": "PyPI"},
                            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]}
    assert affects(no_fix, "demo", "99.0")  # unfixed: every release, including ones newer than the advisory
