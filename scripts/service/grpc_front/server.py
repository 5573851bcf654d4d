"""The Open Inference Protocol v2 over gRPC on GRPC_PORT: a front in the supervisor process.

    inference.GRPCInferenceService (config/grpc_inference.proto; tritonclient.grpc and KServe's
    InferenceGRPCClient call it unchanged) and grpc.health.v1.Health (Kubernetes' gRPC probes).

One pipeline, not two: ``ModelInfer`` becomes the HTTP v2 binary request of
``POST /v2/models/NAME[/versions/V]/infer`` (scripts/service/grpc_front/translate.py) and goes through
nginx, on a loopback server of its own (config/nginx-grpc-server.part), to the same handler stages as
every other wire format, so MAX_INFLIGHT, RATE_LIMIT_RPS (per gRPC client), API keys, the request
id, the size limits and every check and message are the same as over HTTP. ServerMetadata and
ModelMetadata take that road too (GET /v2[/models/NAME]). ServerLive, ServerReady, ModelReady and
Health are answered here from the readiness snapshot, the one that answers GET /health
(scripts/service/readiness.py).

Runs as grpc.aio on an event loop in a thread of the supervisor, which starts it before TorchServe
and stops it first (its calls still in flight drain through nginx). Each call is one JSON log line
(logger ``grpc.access``) in the supervisor's stream and counts in ``resnet50_grpc_*`` on GET /metrics.

Why here and through nginx: the front costs one loopback hop and a little CPU per call (its own
share of a call, the log's latency_s - upstream_latency_s, measured at 0.7 ms median and 3.4 ms p99
beside the model's hundreds: scripts/bench/grpc_front_overhead.py; the benchmark's --protocols mode
measures gRPC against HTTP v2 in one run), and nginx then applies every limit of the HTTP routes;
TorchServe's own gRPC service for the protocol cannot serve tritonclient (wrong package name, no raw
tensors).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2

from scripts.service.grpc_front.health import ReadinessHealth
from scripts.service.grpc_front.metrics import GrpcMetrics
from scripts.service.grpc_front.ports import chosen_by_user, grpc_port_decision
from scripts.service.grpc_front.proto import Protocol, load_protocol
from scripts.service.grpc_front.translate import (
    REQUEST_ID_KEY,
    GrpcFailure,
    UpstreamRequest,
    check_model_name,
    failure_from_http,
    infer_http_request,
    infer_response,
    model_metadata_response,
    model_path,
    peer_address,
    request_id_from,
    server_metadata_response,
    upstream_headers,
)
from scripts.service.grpc_front.upstream import HttpAnswer, UpstreamError, UpstreamPool
from scripts.service.ports import PortInUse, free_loopback_ports
from scripts.service.readiness import UNREADY_POLL_INTERVAL_S, ManagementPoller, Responder, unready_reason

HEALTH_SERVICE = "grpc.health.v1.Health"
START_TIMEOUT_S = 30
# nginx answers 504 at REQUEST_TIMEOUT; the front waits a little longer so that answer arrives.
UPSTREAM_GRACE_S = 5


class GrpcStartError(RuntimeError):
    """The front could not start (its port could not be bound, the .proto did not compile)."""


@dataclass
class Call:
    """One RPC as the log line and the upstream request see it."""

    method: str
    request_id: str
    metadata: dict[str, str]
    peer: str
    upstream_status: int | None = None
    upstream_s: float | None = None  # waiting on nginx (and TorchServe behind it); the rest is the front's own
    error_code: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class GrpcFront:
    """The gRPC server, its event loop thread, and the pool of connections to nginx."""

    def __init__(self, settings: dict[str, str], responder: Responder, poller: ManagementPoller,
                 emit: Callable[[dict], None], protocol: Protocol | None = None,
                 metrics: GrpcMetrics | None = None) -> None:
        self.settings = settings
        self.responder = responder
        self.poller = poller
        self.emit = emit
        self.protocol = protocol or load_protocol()
        self.metrics = metrics or GrpcMetrics()
        self.model_name = settings["MODEL_NAME"]
        self.request_timeout = int(settings["REQUEST_TIMEOUT"])
        self.slow_s = int(settings["SLOW_REQUEST_MS"]) / 1000
        self.log_threshold = logging.getLevelName(settings.get("LOG_LEVEL", "INFO"))
        self.address = bind_address(settings["BIND_ADDRESS"], int(settings["GRPC_PORT"]))
        self.pool = UpstreamPool("127.0.0.1", int(settings["GRPC_PROXY_PORT"]))
        self.health = ReadinessHealth(self.ready, [self.model_name, self.protocol.service])
        self.port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._grace = 0.0

    # ------------------------------------------------------------------------ lifecycle
    def start(self) -> "GrpcFront":
        """Bind and serve; returns once the port is bound (GrpcStartError if it cannot be)."""
        self._thread = threading.Thread(target=self._run, name="grpc-front", daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise GrpcStartError("the gRPC front did not start in time")
        if self._error is not None:
            raise GrpcStartError(str(self._error)) from self._error
        return self

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, grace: float) -> None:
        """NOT_SERVING, no new calls, calls in flight get ``grace`` seconds, then the loop ends."""
        loop, stop = self._loop, self._stop
        if loop is None or stop is None or not self.alive():
            return
        self._grace = grace
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # the loop closed meanwhile
            return
        self._thread.join(grace + 5)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # noqa: BLE001 - told to start() or seen by alive()
            self._error = error
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = grpc.aio.server(options=[
            # Never share the port with another process (grpc's default on Linux): a second instance
            # would silently receive half of the first one's calls.
            ("grpc.so_reuseport", 0),
            # The size limit of every route: MAX_FILE_SIZE (larger: RESOURCE_EXHAUSTED, gRPC's own answer).
            ("grpc.max_receive_message_length", int(self.settings["MAX_FILE_SIZE"])),
        ])
        server.add_generic_rpc_handlers((self._inference_handlers(), self._health_handlers()))
        try:
            self.port = server.add_insecure_port(self.address)
        except RuntimeError as error:
            raise GrpcStartError(f"cannot listen on {self.address}: {error}") from None
        await server.start()
        self._started.set()
        watcher = asyncio.create_task(self._follow_readiness())
        try:
            await self._stop.wait()
        finally:
            await self.health.enter_graceful_shutdown()
            await server.stop(self._grace)
            watcher.cancel()
            self.pool.close()

    async def _follow_readiness(self) -> None:
        while True:
            await self.health.sync()
            await asyncio.sleep(UNREADY_POLL_INTERVAL_S)

    # ------------------------------------------------------------------------ handlers
    def _inference_handlers(self) -> grpc.GenericRpcHandler:
        implementations = {
            "ServerLive": self.server_live, "ServerReady": self.server_ready, "ModelReady": self.model_ready,
            "ServerMetadata": self.server_metadata, "ModelMetadata": self.model_metadata,
            "ModelInfer": self.model_infer,
        }
        handlers = {}
        for name, method in self.protocol.methods.items():
            handlers[name] = grpc.unary_unary_rpc_method_handler(
                self._unary(f"/{self.protocol.service}/{name}", implementations[name]),
                request_deserializer=method.request.FromString, response_serializer=method.response.SerializeToString)
        return grpc.method_handlers_generic_handler(self.protocol.service, handlers)

    def _health_handlers(self) -> grpc.GenericRpcHandler:
        request, response = health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        return grpc.method_handlers_generic_handler(HEALTH_SERVICE, {
            "Check": grpc.unary_unary_rpc_method_handler(
                self._unary(f"/{HEALTH_SERVICE}/Check", lambda r, c, _call: self.health.Check(r, c)),
                request_deserializer=request.FromString, response_serializer=response.SerializeToString),
            # A stream as long as the watcher wants it: not one log line per call.
            "Watch": grpc.unary_stream_rpc_method_handler(
                self.health.Watch, request_deserializer=request.FromString,
                response_serializer=response.SerializeToString),
        })

    def _unary(self, method: str, implementation: Callable[[Any, Any, Call], Awaitable[Any]]):
        """Every unary RPC: request id in and out, errors as status + trailing metadata, one log line."""

        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            metadata = {key: value for key, value in (context.invocation_metadata() or ())
                        if isinstance(value, str)}
            call = Call(method, request_id_from(metadata), metadata, context.peer() or "")
            status = grpc.StatusCode.UNKNOWN
            try:
                try:
                    response = await implementation(request, context, call)
                except GrpcFailure as failure:
                    status, call.error_code, call.upstream_status = failure.status, failure.code, failure.upstream_status
                    failure.request_id = call.request_id
                    await context.abort(failure.status, failure.message, trailing_metadata=failure.trailing_metadata())
                except asyncio.CancelledError:
                    remaining = context.time_remaining()
                    status = grpc.StatusCode.DEADLINE_EXCEEDED if remaining is not None and remaining <= 0.001 \
                        else grpc.StatusCode.CANCELLED
                    raise
                except Exception as error:  # noqa: BLE001 - a bug answers INTERNAL, never hangs the call
                    status, call.error_code = grpc.StatusCode.INTERNAL, "internal_error"
                    call.extra["exception"] = f"{type(error).__name__}: {error}"[:500]
                    await context.abort(status, "The server failed to process the request.",
                                        trailing_metadata=(("x-error-code", call.error_code),
                                                           (REQUEST_ID_KEY, call.request_id)))
                status = grpc.StatusCode.OK
                await context.send_initial_metadata(((REQUEST_ID_KEY, call.request_id),))
                context.set_trailing_metadata(((REQUEST_ID_KEY, call.request_id),))
                return response
            finally:
                self._record(call, status, time.perf_counter() - started)

        return handle

    def _record(self, call: Call, status: grpc.StatusCode, seconds: float) -> None:
        short = call.method.rsplit("/", 1)[-1]
        self.metrics.observe(short, status.name, seconds)
        level = "ERROR" if status != grpc.StatusCode.OK else "WARNING" if seconds >= self.slow_s else "INFO"
        if logging.getLevelName(level) < self.log_threshold:
            return
        entry = {"level": level, "logger": "grpc.access", "message": f"{short} {status.name}",
                 "request_id": call.request_id, "method": call.method, "grpc_status": status.name,
                 "latency_s": round(seconds, 4), "remote_addr": peer_address(call.peer) or call.peer,
                 "user_agent": call.metadata.get("user-agent", "")}
        if call.error_code:
            entry["code"] = call.error_code
        if call.upstream_status is not None:
            entry["upstream_status"] = call.upstream_status
        if call.upstream_s is not None:  # latency_s - upstream_latency_s: what the front itself added
            entry["upstream_latency_s"] = round(call.upstream_s, 4)
        entry.update(call.extra)
        try:
            self.emit(entry)
        except Exception:  # noqa: BLE001 - a broken log stream must not fail the call
            pass

    # -------------------------------------------------------------------- readiness RPCs
    def ready(self) -> bool:
        return unready_reason(self.poller.current()) is None

    def _readiness(self, path: str, call: Call) -> bool:
        return self.responder.answer(path, call.request_id).status == 200

    async def server_live(self, request: Any, context: Any, call: Call) -> Any:
        return self.protocol.ServerLiveResponse(live=self._readiness("/v2/health/live", call))

    async def server_ready(self, request: Any, context: Any, call: Call) -> Any:
        return self.protocol.ServerReadyResponse(ready=self._readiness("/v2/health/ready", call))

    async def model_ready(self, request: Any, context: Any, call: Call) -> Any:
        # An unknown model or version is simply not ready (GET .../ready says 404 or 503 for it).
        ready = bool(request.name) and self._readiness(model_path(request.name, request.version) + "/ready", call)
        return self.protocol.ModelReadyResponse(ready=ready)

    # ---------------------------------------------------------------- through nginx
    async def server_metadata(self, request: Any, context: Any, call: Call) -> Any:
        document = await self._get_json("/v2", context, call)
        return server_metadata_response(self.protocol, document)

    async def model_metadata(self, request: Any, context: Any, call: Call) -> Any:
        check_model_name(request.name, self.model_name)
        document = await self._get_json(model_path(request.name, request.version), context, call)
        return model_metadata_response(self.protocol, document)

    async def model_infer(self, request: Any, context: Any, call: Call) -> Any:
        check_model_name(request.model_name, self.model_name)
        upstream = infer_http_request(request, upstream_headers(call.metadata, call.peer, call.request_id))
        answer = await self._send(upstream, context, call)
        return infer_response(self.protocol, answer.status, answer.headers, answer.body)

    async def _get_json(self, path: str, context: Any, call: Call) -> dict:
        headers = upstream_headers(call.metadata, call.peer, call.request_id)
        answer = await self._send(UpstreamRequest("GET", path, headers), context, call)
        if answer.status != 200:
            raise failure_from_http(answer.status, answer.headers, answer.body)
        return json.loads(answer.body)

    async def _send(self, upstream: UpstreamRequest, context: Any, call: Call) -> HttpAnswer:
        """Through nginx, waiting no longer than the client's deadline (or REQUEST_TIMEOUT's answer)."""
        cap = self.request_timeout + UPSTREAM_GRACE_S
        remaining = context.time_remaining()
        timeout = cap if remaining is None else max(0.0, min(cap, remaining))
        sent = time.perf_counter()
        try:
            answer = await asyncio.wait_for(self.pool.send(upstream), timeout)
        except asyncio.TimeoutError:
            if remaining is not None and remaining <= cap:
                raise GrpcFailure(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline_exceeded",
                                  "The client's deadline passed before the model answered.") from None
            raise GrpcFailure(grpc.StatusCode.DEADLINE_EXCEEDED, "timeout",
                              f"The model did not answer within {self.request_timeout} s.") from None
        except UpstreamError:
            raise GrpcFailure(grpc.StatusCode.UNAVAILABLE, "model_unavailable",
                              "The service cannot serve this request now; retry shortly.", retry_after_s=1) from None
        call.upstream_status = answer.status
        call.upstream_s = (call.upstream_s or 0.0) + time.perf_counter() - sent
        return answer


def bind_address(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# ---------------------------------------------------------------------------- the supervisor's
def start_grpc_front(settings: dict[str, str], readiness: Any, relay: Any) -> GrpcFront | None:
    """Start the front on GRPC_PORT for scripts/service/supervisor.py, after the ports are resolved and
    before nginx's config is rendered (it renders the front's loopback server when GRPC_PORT and
    GRPC_PROXY_PORT are set). None, with GRPC_PORT emptied, when gRPC is off: not configured, or
    the default port taken (one WARNING). A port the user chose, taken: PortInUse (exit 2)."""
    if not settings.get("GRPC_PORT"):
        return None
    warning = grpc_port_decision(settings)
    if warning is None:
        taken = {int(value) for key, value in settings.items()
                 if key.endswith("_PORT") and value.isdigit()}
        settings["GRPC_PROXY_PORT"] = str(free_loopback_ports(1, avoid=taken)[0])
        front = GrpcFront(settings, readiness.httpd.responder, readiness.poller, relay.emit)
        try:
            front.start()
        except GrpcStartError as error:
            if chosen_by_user(settings):
                raise PortInUse(f"GRPC_PORT {settings['GRPC_PORT']} on {settings['BIND_ADDRESS']} could not be "
                                f"bound ({error}): stop what holds it, or start with another GRPC_PORT") from None
            warning = (f"GRPC_PORT {settings['GRPC_PORT']} could not be bound ({error}): gRPC is off for this "
                       "instance; set GRPC_PORT=N to serve it on port N")
        else:
            readiness.httpd.responder.metric_sources.append(front.metrics.render)
            relay.log("INFO", f"gRPC (Open Inference Protocol v2, grpc.health.v1) on {front.address}",
                      event="grpc_listening", grpc_port=front.port)
            return front
    relay.log("WARNING", warning, event="grpc_port_in_use", grpc_port=settings["GRPC_PORT"])
    settings["GRPC_PORT"] = ""
    settings.pop("GRPC_PROXY_PORT", None)
    return None
