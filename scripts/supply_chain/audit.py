#!/usr/bin/env python3
"""Audit every lock with pip-audit; write requirements/locks/audit.json (scripts/lock.sh runs it last).

    python -m scripts.supply_chain.audit                       # PyPI's data (or build/advisory-database, if there)
    python -m scripts.supply_chain.audit --advisory-db DIR     # a local copy of the PyPA advisory database
    python -m scripts.supply_chain.audit --pypi                # PyPI's data even where a local copy exists

Every (package, version) of every lock is audited once, whatever its environment marker (a package only
Windows installs is audited too). With --advisory-db, pip-audit asks an OSV-compatible endpoint on
loopback (osv_local.py) that answers from DIR/vulns/<package>/*.yaml: for machines where PyPI's per-release
JSON is out of reach, as it is on the development machine. The result records which source answered and
every finding; SECURITY.md records a decision for each (tests/unit/test_supply_chain.py holds them together).
Runs in build/lock-tools-venv (pip-audit, pyyaml).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts import REPO_ROOT
from scripts.supply_chain.lock_sets import AUDIT_RESULT, LOCK_SETS, parse_lock

PIP_AUDIT = Path(sys.executable).parent / "pip-audit"
# Where a local copy of the PyPA advisory database is used without being named (build/ is not committed).
LOCAL_ADVISORY_DB = "build/advisory-database"


def say(message: str) -> None:
    print(f"audit: {message}", file=sys.stderr, flush=True)


def locked_packages(root: Path) -> dict[tuple[str, str], list[str]]:
    """(name, version) -> the lock sets that hold it."""
    packages: dict[tuple[str, str], list[str]] = {}
    for lock_set in LOCK_SETS:
        requirements, _ = parse_lock((root / lock_set.lock).read_text(encoding="utf-8"))
        for requirement in requirements:
            sets = packages.setdefault((requirement.name, requirement.version), [])
            if lock_set.name not in sets:
                sets.append(lock_set.name)
    return packages


def requirement_chunks(packages: list[tuple[str, str]]) -> list[list[str]]:
    """Marker-free ``name==version`` lines, split so that no file names a package twice (pip-audit's rule)."""
    chunks: list[list[str]] = []
    names: list[set[str]] = []
    for name, version in sorted(packages):
        index = next((i for i, held in enumerate(names) if name not in held), len(chunks))
        if index == len(chunks):
            chunks.append([])
            names.append(set())
        chunks[index].append(f"{name}=={version}")
        names[index].add(name)
    return chunks


def lock_digests(root: Path) -> dict[str, str]:
    return {lock_set.name: hashlib.sha256((root / lock_set.lock).read_bytes()).hexdigest() for lock_set in LOCK_SETS}


def run_pip_audit(lines: list[str], osv_url: str | None) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text("\n".join(lines) + "\n")
        report = Path(scratch) / "report.json"
        command = [str(PIP_AUDIT), "-r", str(requirements), "--no-deps", "--disable-pip", "--progress-spinner", "off",
                   "--aliases", "on", "--desc", "on", "-f", "json", "-o", str(report)]
        if osv_url:
            command += ["-s", "osv", "--osv-url", osv_url]
        # Exit 1 means "vulnerabilities found": the report says which; anything else is a failure.
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode not in (0, 1) or not report.exists():
            raise SystemExit(f"audit: pip-audit failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        return json.loads(report.read_text())


def collect(reports: list[dict], packages: dict[tuple[str, str], list[str]]) -> tuple[list[dict], list[dict]]:
    """Findings (one per advisory and package version) and skipped packages, from pip-audit's JSON reports."""
    findings: list[dict] = []
    skipped: list[dict] = []
    for report in reports:
        for dependency in report.get("dependencies", []):
            key = (dependency["name"], dependency.get("version", ""))
            if dependency.get("skip_reason"):
                skipped.append({"package": dependency["name"], "reason": dependency["skip_reason"]})
                continue
            for vulnerability in dependency.get("vulns", []):
                findings.append({
                    "id": vulnerability["id"],
                    "aliases": sorted(vulnerability.get("aliases", [])),
                    "package": key[0],
                    "version": key[1],
                    "fix_versions": vulnerability.get("fix_versions", []),
                    "sets": packages.get(key, []),
                    "description": " ".join(vulnerability.get("description", "").split())[:400],
                })
    findings.sort(key=lambda finding: (finding["package"], finding["version"], finding["id"]))
    return findings, skipped


DECISIONS = ("fixed", "not applicable", "accepted")
ADVISORY_ID = re.compile(r"\b(?:PYSEC|CVE|GHSA|OSV|PVE|BIT)-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+")


def decisions(security_text: str) -> dict[str, str]:
    """Advisory id -> its decision, from SECURITY.md's audit table rows ``| ID ... | package | ... | decision: why |``.

    Every advisory id in a row (aliases too) maps to the row's decision: the first cell that begins with one
    of DECISIONS."""
    found: dict[str, str] = {}
    for line in security_text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip().strip("*`") for cell in line.strip().strip("|").split("|")]
        decision = next((word for cell in cells for word in DECISIONS if cell.lower().startswith(word)), None)
        if decision is None:
            continue
        for advisory_id in ADVISORY_ID.findall(line):
            found[advisory_id] = decision
    return found


def undecided(findings: list[dict], security_text: str) -> list[str]:
    """The findings SECURITY.md records no decision for (by id or by one of its aliases)."""
    decided = decisions(security_text)
    return [f"{finding['package']} {finding['version']}: {finding['id']}" for finding in findings
            if not any(name in decided for name in [finding["id"], *finding.get("aliases", [])])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    local = REPO_ROOT / LOCAL_ADVISORY_DB
    parser.add_argument("--advisory-db", type=Path, default=local if (local / "vulns").is_dir() else None,
                        help="a checkout (or export) of the PyPA advisory database: audit against it, offline "
                             f"(default: {LOCAL_ADVISORY_DB} when it exists, else PyPI's data)")
    parser.add_argument("--pypi", action="store_true", help="use PyPI's data even when a local database exists")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / AUDIT_RESULT)
    args = parser.parse_args(argv)

    packages = locked_packages(REPO_ROOT)
    chunks = requirement_chunks(list(packages))
    say(f"{len(packages)} package versions from {len(LOCK_SETS)} locks, in {len(chunks)} pip-audit run(s)")
    if args.advisory_db and not args.pypi:
        from scripts.supply_chain.osv_local import AdvisoryDatabase, serve

        database = AdvisoryDatabase(args.advisory_db)
        with serve(database) as osv_url:
            reports = [run_pip_audit(chunk, osv_url) for chunk in chunks]
        source = {"service": "osv (local)", "data": f"PyPA advisory database, {database.snapshot()}",
                  "advisories_loaded": database.advisory_count()}
    else:
        reports = [run_pip_audit(chunk, None) for chunk in chunks]
        source = {"service": "pypi", "data": "PyPI's per-release vulnerability data"}
    findings, skipped = collect(reports, packages)
    if skipped:
        for entry in skipped[:5]:
            say(f"not audited: {entry['package']}: {entry['reason']}")
        say(f"{len(skipped)} of {len(packages)} package versions could not be audited; {args.output} left as it was. "
            "Where PyPI's per-release data is unreachable, audit against the PyPA advisory database: "
            f"git clone --depth 1 https://github.com/pypa/advisory-database {LOCAL_ADVISORY_DB}; scripts/lock.sh")
        return 1
    version = subprocess.run([str(PIP_AUDIT), "--version"], capture_output=True, text=True).stdout.strip()
    result = {
        "tool": version,
        "source": source,
        "audited_on": datetime.date.today().isoformat(),
        "package_versions_audited": len(packages),
        "locks": lock_digests(REPO_ROOT),
        "findings": findings,
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    say(f"{len(findings)} finding(s) written to {args.output.relative_to(REPO_ROOT)}; "
        "each needs a decision in SECURITY.md (\"Audit\")")
    for finding in findings:
        say(f"  {finding['package']} {finding['version']}: {finding['id']} {' '.join(finding['aliases'])} "
            f"fixed in {', '.join(finding['fix_versions']) or 'no release'} ({', '.join(finding['sets'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
