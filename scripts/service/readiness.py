"""Readiness without the inference queue: a small loopback HTTP responder in the supervisor.

``GET /health`` used to travel through TorchServe's job queue to a worker, so under ordinary load
(every worker busy for 2 s) every pod said "not ready" at once. Readiness means "this instance can
serve": the frontend answers, the model is registered and at least one of its workers is READY
(TorchServe marks a worker READY only once the handler's ``initialize`` returned, i.e. the weights
matched the archive and the self-test passed). TorchServe's management API describes a model from
the frontend's memory, without the job queue; this module polls it at most every 0.5 s in a
background thread and answers every probe from that snapshot at once.

nginx proxies to it (``READINESS_PORT`` in ``config/nginx.conf.template``):

    GET /health                  200/503, body {status, model, pretrained, worker_pid, reason, request_id}
    GET /live                    200 while the frontend answers the management API (liveness)
    GET /v2, /v2/health/live, /v2/health/ready,
        /v2/models/NAME[/versions/V][/ready]    Open Inference Protocol v2 (metadata and health)
    GET /v1/models, /v1/models/NAME             KServe v1: the model list and the model's readiness
    GET /metrics                 Prometheus gauges from the same snapshot (queue depth, ready workers)

The class count of the model metadata comes from the archive's ``model_meta.json`` (its
``categories``), read from the model store once per archive.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from scripts import REPO_ROOT
from scripts.service.shedding import ShedTarpit

POLL_INTERVAL_S = 0.5  # how stale readiness may be; the management API answers from memory
# While not ready, poll faster: a restarted worker is back in service within 0.1 s of being
# READY instead of up to 0.5 s later (docs/performance.md, "Restarts"). Still a few cheap
# in-memory calls a second, and only while the pod serves nothing anyway.
UNREADY_POLL_INTERVAL_S = 0.1
POLL_TIMEOUT_S = 1.0
# A snapshot older than this is not trusted: the frontend stopped answering (or the poller died).
STALE_AFTER_S = 3.0
READY = "READY"
SERVER_NAME = "resnet50-serve"
V2_EXTENSIONS = ["binary_tensor_data", "classification"]
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
_MODEL_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<ready>/ready)?$")
_V1_MODEL_PATH = re.compile(r"^/v1/models/(?P<name>[^/]+)$")


# ------------------------------------------------------------------------------ the snapshot
@dataclass(frozen=True)
class Snapshot:
    """What the management API said at ``taken`` (monotonic seconds)."""

    taken: float
    frontend_up: bool
    registered: bool = False
    default: dict | None = None  # describe of the default version
    versions: tuple[dict, ...] = ()  # describe of every loaded version
    error: str = ""


@dataclass
class ArchiveFacts:
    pretrained: bool | None
    num_classes: int | None


def ready_workers(description: dict | None) -> list[dict]:
    return [w for w in (description or {}).get("workers", []) if w.get("status") == READY]


def archive_facts(model_store: Path, model_url: str) -> ArchiveFacts:
    """``pretrained`` and the class count from the archive's model_meta.json (None if unreadable)."""
    path = model_store / Path(model_url).name
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("model_meta.json"))
        categories = meta.get("categories")
        classes = len(categories) if isinstance(categories, list) and categories else None
        return ArchiveFacts(pretrained=bool(meta.get("weights", {}).get("pretrained")), num_classes=classes)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, AttributeError):
        return ArchiveFacts(pretrained=None, num_classes=None)


class ManagementPoller:
    """Polls ``GET /models/NAME`` and ``/models/NAME/all`` (answered from the frontend's memory)."""

    def __init__(self, model_name: str, model_store: Path, port_of: Callable[[], int],
                 key_of: Callable[[], str | None], interval: float = POLL_INTERVAL_S,
                 timeout: float = POLL_TIMEOUT_S, stale_after: float = STALE_AFTER_S,
                 unready_interval: float = UNREADY_POLL_INTERVAL_S) -> None:
        self.model_name = model_name
        self.model_store = model_store
        self._port_of = port_of
        self._key_of = key_of
        self.interval = interval
        self.unready_interval = unready_interval
        self.timeout = timeout
        self.stale_after = stale_after
        self.snapshot = Snapshot(taken=-1e9, frontend_up=False, error="starting")
        self._facts: dict[tuple[str, float], ArchiveFacts] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: http.client.HTTPConnection | None = None

    # -- polling
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="readiness-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.snapshot = self.poll_once()
            interval = self.interval if unready_reason(self.snapshot) is None else self.unready_interval
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def _get(self, path: str) -> tuple[int, Any]:
        key = self._key_of()
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self._port_of(), timeout=self.timeout)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            self._conn.request("GET", path, headers=headers)
            response = self._conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = None
            raise
        try:
            return response.status, json.loads(body or b"null")
        except ValueError:
            return response.status, None

    def poll_once(self) -> Snapshot:
        now = time.monotonic()
        if not self._key_of():
            return Snapshot(taken=now, frontend_up=False, error="starting")
        try:
            status, default = self._get(f"/models/{self.model_name}")
            if status == 404:
                return Snapshot(taken=now, frontend_up=True, error="model_not_registered")
            if status != 200 or not isinstance(default, list) or not default:
                return Snapshot(taken=now, frontend_up=True, error=f"management_api_{status}")
            status, every = self._get(f"/models/{self.model_name}/all")
            versions = tuple(every) if status == 200 and isinstance(every, list) else (default[0],)
        except (OSError, http.client.HTTPException) as error:
            return Snapshot(taken=now, frontend_up=False, error=f"frontend_unreachable: {error}")
        return Snapshot(taken=now, frontend_up=True, registered=True, default=default[0], versions=versions)

    # -- reading the snapshot
    def current(self) -> Snapshot:
        snapshot = self.snapshot
        if time.monotonic() - snapshot.taken > self.stale_after and snapshot.error != "starting":
            return Snapshot(taken=snapshot.taken, frontend_up=False, error="frontend_unreachable: no answer")
        return snapshot

    def facts(self, description: dict | None) -> ArchiveFacts:
        url = (description or {}).get("modelUrl") or ""
        if not url:
            return ArchiveFacts(None, None)
        path = self.model_store / Path(url).name
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return ArchiveFacts(None, None)
        key = (str(path), mtime)
        if key not in self._facts:
            self._facts[key] = archive_facts(self.model_store, url)
        return self._facts[key]

    def version(self, snapshot: Snapshot, version: str | None) -> dict | None:
        if version is None:
            return snapshot.default
        return next((v for v in snapshot.versions if str(v.get("modelVersion")) == version), None)


def unready_reason(snapshot: Snapshot) -> str | None:
    """None when ready, else why not (stable words for the body's ``reason``)."""
    if not snapshot.frontend_up:
        return "starting" if snapshot.error == "starting" else "frontend_unreachable"
    if not snapshot.registered:
        return "model_not_registered"
    if not ready_workers(snapshot.default):
        return "no_ready_worker"
    return None


# ------------------------------------------------------------------------------- HTTP answers
@dataclass
class Answer:
    status: int
    body: dict | str
    headers: dict[str, str] = field(default_factory=dict)


class Responder:
    """Maps a GET path to an answer from the poller's snapshot."""

    def __init__(self, poller: ManagementPoller, tarpit: ShedTarpit | None = None) -> None:
        self.poller = poller
        self.tarpit = tarpit
        # More Prometheus text for GET /metrics, from others in this process (the gRPC front's counters).
        self.metric_sources: list[Callable[[], str]] = [tarpit.metrics] if tarpit else []

    def answer(self, path: str, request_id: str) -> Answer:
        path = unquote(urlsplit(path).path)
        if path == "/health":
            return self.health(request_id)
        if path == "/_shed" and self.tarpit:  # nginx's, for a request MAX_INFLIGHT shed (scripts/service/shedding.py)
            return self.shed()
        if path in ("/live", "/v2/health/live"):
            return self.live(path)
        if path == "/v2/health/ready":
            ready = unready_reason(self.poller.current()) is None
            return Answer(200 if ready else 503, {"ready": ready}, _no_store(ready))
        if path == "/v2":
            return Answer(200, {"name": SERVER_NAME, "version": _version(), "extensions": V2_EXTENSIONS})
        if path == "/metrics":
            text = self.metrics() + "".join(source() for source in self.metric_sources)
            return Answer(200, text, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
        if path == "/v1/models":  # KServe v1: the models this server serves
            return Answer(200, {"models": [self.poller.model_name]})
        match = _V1_MODEL_PATH.match(path)
        if match:
            return self.v1_model_ready(match["name"], request_id)
        match = _MODEL_PATH.match(path)
        if match:
            return self.model(match["name"], match["version"], bool(match["ready"]), request_id)
        return Answer(404, _v2_error("No such route.", "not_found", request_id))

    def health(self, request_id: str) -> Answer:
        snapshot = self.poller.current()
        reason = unready_reason(snapshot)
        if reason is not None:
            body = {"status": "unhealthy", "reason": reason, "request_id": request_id}
            return Answer(503, body, {"Retry-After": "5", "Cache-Control": "no-store"})
        default = snapshot.default
        worker = ready_workers(default)[0]
        return Answer(200, {
            "status": "healthy",
            "model": {"name": default.get("modelName"), "version": str(default.get("modelVersion"))},
            "pretrained": self.poller.facts(default).pretrained,
            "worker_pid": worker.get("pid"),
            "workers_ready": len(ready_workers(default)),
            "request_id": request_id,
        }, {"Cache-Control": "no-store"})

    def shed(self) -> Answer:
        """Hold the shed request, then 503 (nginx writes the route's own overloaded answer)."""
        default = self.poller.current().default or {}
        held = self.tarpit.hold((default.get("jobQueueStatus") or {}).get("pendingRequests"))
        return Answer(503, "", {"X-Shed-Held-Ms": str(round(held * 1000))})

    def v1_model_ready(self, name: str, request_id: str) -> Answer:
        """KServe v1's model readiness, as KServe's own model server answers it: 200 {"name", "ready":
        true}; 503 {"error": "Model with name N is not ready."} (kserve.errors.ModelNotReady); 404
        {"error": "Model with name N does not exist."} (ModelNotFound). Ready means what /health means."""
        if name != self.poller.model_name:
            return Answer(404, _v2_error(f"Model with name {name[:64]} does not exist.", "not_found", request_id))
        reason = unready_reason(self.poller.current())
        if reason is not None:
            body = {**_v2_error(f"Model with name {name} is not ready.", "model_unavailable", request_id),
                    "reason": reason}
            return Answer(503, body, _no_store(False))
        return Answer(200, {"name": name, "ready": True}, _no_store(True))

    def live(self, path: str) -> Answer:
        snapshot = self.poller.current()
        alive = snapshot.frontend_up
        body = {"live": alive} if path.startswith("/v2") else {"status": "alive" if alive else "dead"}
        return Answer(200 if alive else 503, body, _no_store(alive))

    def model(self, name: str, version: str | None, ready_only: bool, request_id: str) -> Answer:
        if name != self.poller.model_name:
            return Answer(404, _v2_error(f"Unknown model '{name[:64]}': this server serves "
                                         f"'{self.poller.model_name}'.", "not_found", request_id))
        snapshot = self.poller.current()
        if not snapshot.registered:
            reason = unready_reason(snapshot) or "model_not_registered"
            if ready_only:
                return Answer(503, {"name": name, "ready": False, "reason": reason}, _no_store(False))
            return Answer(503, _v2_error("The model is not available yet; retry shortly.",
                                         "model_unavailable",
                                         request_id), {"Retry-After": "1"})
        description = self.poller.version(snapshot, version)
        if description is None:
            loaded = ", ".join(sorted(str(v.get("modelVersion")) for v in snapshot.versions))
            return Answer(404, _v2_error(f"Model '{name}' has no version '{version[:64]}' "
                                         f"(loaded: {loaded}).",
                                         "not_found", request_id))
        if ready_only:
            ready = bool(ready_workers(description))
            body = {"name": name, "version": str(description.get("modelVersion")), "ready": ready}
            return Answer(200 if ready else 503, body, _no_store(ready))
        classes = self.poller.facts(description).num_classes
        return Answer(200, {
            "name": name,
            "versions": sorted(str(v.get("modelVersion")) for v in snapshot.versions),
            "platform": "torchserve",
            "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, classes if classes else -1]}],
        })

    def metrics(self) -> str:
        snapshot = self.poller.current()
        default = snapshot.default or {}
        queue = (default.get("jobQueueStatus") or {}).get("pendingRequests")
        name = self.poller.model_name
        lines = [
            "# HELP resnet50_queue_depth Requests waiting in TorchServe's job queue for a worker "
            "(the default version), sampled every 0.5 s.",
            "# TYPE resnet50_queue_depth gauge",
        ]
        if queue is not None:
            lines.append(f'resnet50_queue_depth{{ModelName="{name}"}} {int(queue)}')
        lines += [
            "# HELP resnet50_workers_ready Workers of the default version that are READY "
            "(loaded, self-test passed).",
            "# TYPE resnet50_workers_ready gauge",
            f'resnet50_workers_ready{{ModelName="{name}"}} {len(ready_workers(snapshot.default))}',
            "# HELP resnet50_ready 1 when GET /health answers 200, else 0.",
            "# TYPE resnet50_ready gauge",
            f'resnet50_ready{{ModelName="{name}"}} {1 if unready_reason(snapshot) is None else 0}',
        ]
        return "\n".join(lines) + "\n"


def _no_store(ok: bool) -> dict[str, str]:
    return {"Cache-Control": "no-store"} if ok else {"Cache-Control": "no-store", "Retry-After": "1"}


def _v2_error(message: str, code: str, request_id: str) -> dict:
    """The Open Inference Protocol's error body ({"error": "<message>"}) plus our stable code and id."""
    return {"error": message, "code": code, "request_id": request_id}


_VERSION: list[str] = []


def _version() -> str:
    if not _VERSION:  # pyproject.toml is not in the container image
        try:
            text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
        except OSError:
            text = ""
        match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
        _VERSION.append(match.group(1) if match else "unknown")
    return _VERSION[0]


# --------------------------------------------------------------------------------- the server
class _Handler(BaseHTTPRequestHandler):
    server_version = "readiness"
    responder: Responder

    def _send(self, with_body: bool) -> None:
        request_id = self.headers.get("X-Request-ID", "")
        try:
            answer = self.server.responder.answer(self.path, request_id)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a bug must answer 500, never hang the probe
            answer = Answer(500, _v2_error("The readiness responder failed.", "internal_error", request_id))
        payload = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
        data = payload.encode("utf-8")
        self.send_response(answer.status)
        headers = {"Content-Type": "application/json", **answer.headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._send(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(False)

    def log_message(self, *args: Any) -> None:  # nginx's access log has every request already
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # nginx may hand over a storm's shed requests all at once


class ReadinessServer:
    """The poller plus a threaded HTTP server on 127.0.0.1 (port 0 = a free one); with a tarpit, it also
    holds the requests nginx sheds (``/_shed``)."""

    def __init__(self, model_name: str, model_store: Path, port: int = 0,
                 tarpit: ShedTarpit | None = None) -> None:
        self._management_port: int | None = None
        self._key: str | None = None
        self.poller = ManagementPoller(model_name, model_store, lambda: self._management_port or 0,
                                       lambda: self._key)
        self.httpd = _Server(("127.0.0.1", port), _Handler)
        self.httpd.responder = Responder(self.poller, tarpit)  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> "ReadinessServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="readiness-http", daemon=True)
        self._thread.start()
        self.poller.start()
        return self

    def connect(self, management_port: int, management_key: str) -> None:
        """TorchServe's management API is known (its key is issued anew at each start)."""
        self._management_port = management_port
        self._key = management_key

    def stop(self) -> None:
        self.poller.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
