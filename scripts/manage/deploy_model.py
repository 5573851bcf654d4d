#!/usr/bin/env python3
"""Switch the running service to another model version with zero failed requests.

    python -m scripts.manage.deploy_model path/to/resnet50.mar   # register its version, make it the default
    python -m scripts.manage.deploy_model --rollback             # back to the version served before
    python -m scripts.manage.deploy_model --status               # loaded versions and the default

A switch, through TorchServe's management API (loopback only, token-protected; never via
:5000): copy the archive into MODEL_STORE as <name>-<version>.mar; register it with the same
workers/batching as the service, synchronously; wait until every worker is READY and the
version answers a health probe on its own URL; make it the default (new requests go to it);
wait until the old version's queue is empty and its in-flight batch has had time to finish;
unregister the old version. Any failure before the default moves unregisters the new version
and leaves the old one serving. The result is recorded in MODEL_STORE/<name>.deployed.json,
which the next start of the service also loads, and which --rollback reads.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import requests

from scripts.service.render_config import template_values
from scripts.service.ports import read_ports
from scripts.service.settings import SettingsError, load_settings
from scripts.service.ts_tokens import ApiKeys, read_keys

DEFAULT_DRAIN_S = 3.0


class DeployError(Exception):
    """A switch that could not be made; the message says what still serves."""


@dataclass(frozen=True)
class ArchiveIdentity:
    name: str
    version: str


def archive_identity(archive: Path) -> ArchiveIdentity:
    """modelName and modelVersion from the archive's MAR-INF/MANIFEST.json."""
    try:
        with zipfile.ZipFile(archive) as mar:
            manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))
        model = manifest["model"]
        return ArchiveIdentity(name=str(model["modelName"]), version=str(model["modelVersion"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise DeployError(f"{archive} is not a model archive with a manifest ({error})") from error


def deployment_record_path(model_store: Path, name: str) -> Path:
    return model_store / f"{name}.deployed.json"


def read_record(model_store: Path, name: str) -> dict:
    path = deployment_record_path(model_store, name)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"default": None, "history": []}


def write_record(model_store: Path, name: str, record: dict) -> None:
    path = deployment_record_path(model_store, name)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    temporary.replace(path)  # atomic: a start of the service never reads half a record


class ManagementApi:
    """The few TorchServe management and inference calls a switch needs."""

    def __init__(self, settings: dict[str, str], keys: ApiKeys) -> None:
        self.name = settings["MODEL_NAME"]
        self.management = f"http://127.0.0.1:{settings['TS_MANAGEMENT_PORT']}"
        self.inference = f"http://127.0.0.1:{settings['TS_INFERENCE_PORT']}"
        self.keys = keys

    def _call(self, method: str, url: str, api: str = "management", timeout: float = 30, **kwargs):
        try:
            return requests.request(method, url, headers=self.keys.header(api) | kwargs.pop("headers", {}),
                                    timeout=timeout, **kwargs)
        except requests.RequestException as error:
            raise DeployError(f"TorchServe's {api} API did not answer ({error.__class__.__name__})") from error

    def versions(self) -> list[dict]:
        response = self._call("GET", f"{self.management}/models/{self.name}/all")
        return response.json() if response.status_code == 200 else []

    def default_version(self) -> str | None:
        response = self._call("GET", f"{self.management}/models/{self.name}")
        return response.json()[0]["modelVersion"] if response.status_code == 200 else None

    def describe(self, version: str) -> dict | None:
        response = self._call("GET", f"{self.management}/models/{self.name}/{version}")
        return response.json()[0] if response.status_code == 200 else None

    def register(self, archive_file: str, settings: dict[str, str], timeout: float) -> None:
        params = {
            "url": archive_file, "model_name": self.name, "initial_workers": settings["WORKERS"],
            "batch_size": settings["BATCH_SIZE"], "max_batch_delay": settings["MAX_BATCH_DELAY_MS"],
            "response_timeout": template_values(settings)["TS_RESPONSE_TIMEOUT"], "synchronous": "true",
        }
        response = self._call("POST", f"{self.management}/models", params=params, timeout=timeout)
        if response.status_code != 200:
            raise DeployError(f"TorchServe refused to register {archive_file}: {_message(response)}")

    def wait_ready(self, version: str, workers: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = self.describe(version) or {}
            statuses = [w.get("status") for w in described.get("workers", [])]
            if len(statuses) >= workers and all(s == "READY" for s in statuses):
                return
            time.sleep(0.5)
        raise DeployError(f"version {version} has no {workers} READY worker(s) after {timeout:.0f} s")

    def probe(self, version: str) -> None:
        """The new version answers the handler's health probe on its own URL."""
        response = self._call("POST", f"{self.inference}/predictions/{self.name}/{version}", api="inference",
                              headers={"X-Health-Probe": "1"}, timeout=30)
        if response.status_code != 200 or response.json().get("status") != "healthy":
            raise DeployError(f"version {version} fails its health probe ({response.status_code})")

    def set_default(self, version: str) -> None:
        response = self._call("PUT", f"{self.management}/models/{self.name}/{version}/set-default")
        if response.status_code != 200:
            raise DeployError(f"could not make {version} the default: {_message(response)}")

    def wait_drained(self, version: str, drain_s: float, timeout: float) -> None:
        """No queued request left for ``version``, then ``drain_s`` for the batch in flight."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = self.describe(version) or {}
            if described.get("jobQueueStatus", {}).get("pendingRequests", 0) == 0:
                break
            time.sleep(0.2)
        time.sleep(drain_s)

    def unregister(self, version: str) -> None:
        response = self._call("DELETE", f"{self.management}/models/{self.name}/{version}",
                              params={"synchronous": "true"}, timeout=120)
        if response.status_code != 200:
            raise DeployError(f"could not unregister {version}: {_message(response)}")


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", response.status_code))
    except ValueError:
        return str(response.status_code)


def say(event: str, **fields) -> None:
    """One JSON line per step on stderr (stdout carries the final result)."""
    print(json.dumps({"time": _utc_now(), "event": event, **fields}), file=sys.stderr, flush=True)


def switch_to(api: ManagementApi, settings: dict[str, str], archive_file: str, version: str,
              drain_s: float, timeout: float) -> str | None:
    """Serve ``archive_file`` (already in MODEL_STORE) as the default; return the old default."""
    old = api.default_version()
    if old is None:
        raise DeployError("the service is not running (no default version); start it with scripts/serve.sh")
    if old == version:
        raise DeployError(f"version {version} is already the default")
    if any(v["modelVersion"] == version for v in api.versions()):
        raise DeployError(f"version {version} is already registered; unregister it or bump the version")
    say("register", version=version, archive=archive_file)
    api.register(archive_file, settings, timeout)
    try:
        api.wait_ready(version, int(settings["WORKERS"]), timeout)
        api.probe(version)
        say("ready", version=version)
        api.set_default(version)
    except DeployError:
        say("abort", version=version, serving=old)
        api.unregister(version)
        raise
    say("default", version=version, previous=old)
    api.wait_drained(old, drain_s, timeout)
    api.unregister(old)
    say("unregistered", version=old)
    return old


def deploy(settings: dict[str, str], api: ManagementApi, archive: Path, drain_s: float, timeout: float) -> dict:
    name = settings["MODEL_NAME"]
    identity = archive_identity(archive)
    if identity.name != name:
        raise DeployError(f"{archive} holds model {identity.name!r}, the service serves {name!r}")
    if identity.version == api.default_version():
        raise DeployError(f"version {identity.version} is already the default")
    model_store = Path(settings["MODEL_STORE"]).resolve()
    stored = model_store / f"{name}-{identity.version}.mar"
    if archive.resolve() != stored:
        shutil.copyfile(archive, stored)  # TorchServe registers archives from its model store only
    record = read_record(model_store, name)
    old_default = record.get("default") or {"version": api.default_version(), "archive": f"{name}.mar"}
    switch_to(api, settings, stored.name, identity.version, drain_s, timeout)
    record = {"default": {"version": identity.version, "archive": stored.name, "deployed_at": _utc_now()},
              "history": [*record.get("history", []), old_default]}
    write_record(model_store, name, record)
    return record


def rollback(settings: dict[str, str], api: ManagementApi, drain_s: float, timeout: float) -> dict:
    name = settings["MODEL_NAME"]
    model_store = Path(settings["MODEL_STORE"]).resolve()
    record = read_record(model_store, name)
    if not record.get("history"):
        raise DeployError("nothing to roll back to: no earlier deployment is recorded")
    previous = record["history"][-1]
    if not (model_store / previous["archive"]).exists():
        raise DeployError(f"the earlier archive {previous['archive']} is no longer in {model_store}")
    switch_to(api, settings, previous["archive"], previous["version"], drain_s, timeout)
    record = {"default": {**previous, "deployed_at": _utc_now()}, "history": record["history"][:-1]}
    write_record(model_store, name, record)
    return record


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("archive", nargs="?", type=Path, help="the .mar to serve (its manifest names the version)")
    action.add_argument("--rollback", action="store_true", help="serve the version that was served before")
    action.add_argument("--status", action="store_true", help="print the loaded versions and the default")
    parser.add_argument("--drain-s", type=float, default=DEFAULT_DRAIN_S,
                        help=f"wait after the old queue is empty before unregistering (default {DEFAULT_DRAIN_S})")
    parser.add_argument("--timeout", type=float, default=300.0, help="for registration and readiness (s)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        keys = read_keys(Path(settings["RUN_DIR"]))
        if keys is None:
            raise DeployError(f"no TorchServe key file in RUN_DIR={settings['RUN_DIR']}: is the service running?")
        # The internal ports the running instance chose at its start (TS_*_PORT=auto).
        settings.update(read_ports(Path(settings["RUN_DIR"])) or {})
        api = ManagementApi(settings, keys)
        if args.status:
            result = {"default": api.default_version(),
                      "versions": [{"version": v["modelVersion"], "archive": v["modelUrl"],
                                    "workers": [w["status"] for w in v.get("workers", [])]} for v in api.versions()]}
        elif args.rollback:
            result = rollback(settings, api, args.drain_s, args.timeout)
        else:
            result = deploy(settings, api, args.archive, args.drain_s, args.timeout)
    except (DeployError, SettingsError) as error:
        print(f"deploy_model: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
