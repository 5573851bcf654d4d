"""An OSV ``/v1/query`` endpoint on loopback that answers from a local PyPA advisory database.

pip-audit's services are remote (PyPI's per-release JSON, OSV's API); ``pip-audit --osv-url`` can name any
OSV-compatible endpoint, so a copy of the advisory database (DIR/vulns/<package>/<ID>.yaml, the data PyPI
shows as each release's vulnerabilities) audits offline. Matching follows the OSV schema: a version is
affected when it is listed in ``versions`` or lies in an ECOSYSTEM range (introduced <= v < fixed, or
<= last_affected); withdrawn advisories are left to pip-audit, which skips them. Needs pyyaml and packaging
(build/lock-tools-venv).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import yaml
from packaging.version import InvalidVersion, Version

from scripts.supply_chain.lock_sets import canonical_name


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def in_range(events: list[dict[str, str]], version: Version) -> bool:
    """OSV ECOSYSTEM range semantics: events in order; "0" introduces from the first release."""
    affected = False
    for event in events:
        if "introduced" in event:
            start = event["introduced"]
            if start == "0" or ((bound := _version(start)) is not None and version >= bound):
                affected = True
        elif "fixed" in event:
            bound = _version(event["fixed"])
            if bound is not None and version >= bound:
                affected = False
        elif "last_affected" in event:
            bound = _version(event["last_affected"])
            if bound is not None and version > bound:
                affected = False
    return affected


def affects(advisory: dict[str, Any], name: str, version: str) -> bool:
    parsed = _version(version)
    for affected in advisory.get("affected") or []:
        package = affected.get("package") or {}
        if package.get("ecosystem") != "PyPI" or canonical_name(package.get("name", "")) != name:
            continue
        listed = affected.get("versions") or []
        if version in listed or (parsed is not None and any(_version(v) == parsed for v in listed)):
            return True
        if parsed is not None and any(in_range(r.get("events") or [], parsed) for r in affected.get("ranges") or []
                                      if r.get("type") == "ECOSYSTEM"):
            return True
    return False


class AdvisoryDatabase:
    def __init__(self, root: Path) -> None:
        self.root = root
        vulns = root / "vulns"
        if not vulns.is_dir():
            raise SystemExit(f"audit: {root} has no vulns/ folder: not a PyPA advisory database")
        self.folders = {canonical_name(folder.name): folder for folder in vulns.iterdir() if folder.is_dir()}
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def advisories(self, name: str) -> list[dict[str, Any]]:
        if name not in self._cache:
            folder = self.folders.get(name)
            # BaseLoader: every scalar stays a string ("1.10" must not become the float 1.1).
            loaded = [yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
                      for path in sorted(folder.glob("*.yaml"))] if folder else []
            for advisory in loaded:  # pip-audit compares the package name with its canonical one
                for affected in advisory.get("affected") or []:
                    package = affected.get("package") or {}
                    if package.get("ecosystem") == "PyPI" and "name" in package:
                        package["name"] = canonical_name(package["name"])
            self._cache[name] = loaded
        return self._cache[name]

    def query(self, name: str, version: str) -> list[dict[str, Any]]:
        name = canonical_name(name)
        return [advisory for advisory in self.advisories(name) if affects(advisory, name, version)]

    def advisory_count(self) -> int:
        return sum(1 for folder in self.folders.values() for _ in folder.glob("*.yaml"))

    def snapshot(self) -> str:
        """Which state of the database this is: DIR/SNAPSHOT (an export's note) or the checkout's commit."""
        note = self.root / "SNAPSHOT"
        if note.exists():
            return note.read_text(encoding="utf-8").strip()
        result = subprocess.run(["git", "-C", str(self.root), "log", "-1", "--format=%H %cI"],
                                capture_output=True, text=True)
        return result.stdout.strip() or "unknown state"


def _handler(database: AdvisoryDatabase) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            try:
                query = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                vulns = database.query(query["package"]["name"], query["version"])
                body, status = json.dumps({"vulns": vulns} if vulns else {}).encode(), 200
            except (ValueError, KeyError, TypeError) as error:
                body, status = json.dumps({"message": f"bad query: {error}"}).encode(), 400
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # quiet: pip-audit reports what matters
            pass

    return Handler


@contextlib.contextmanager
def serve(database: AdvisoryDatabase) -> Iterator[str]:
    """Serve the database on a free loopback port for the duration; yields the query URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(database))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()
