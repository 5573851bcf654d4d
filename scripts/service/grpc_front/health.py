"""grpc.health.v1.Health from the readiness snapshot: Kubernetes' native gRPC probes.

SERVING exactly when GET /health would answer 200 (scripts/service/readiness.py: the management
API's worker states), NOT_SERVING otherwise, for the whole server ("") and for each service name
a probe may ask for (the model's name, inference.GRPCInferenceService). Check reads the snapshot at
each call; Watch streams follow it through ``sync``, which the front calls a few times a second.
An unknown service name is NOT_FOUND, as the health protocol says.
"""

from __future__ import annotations

from typing import Callable, Iterable

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from scripts.service.grpc_front.translate import GrpcFailure

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ReadinessHealth(health_aio.HealthServicer):
    def __init__(self, is_ready: Callable[[], bool], services: Iterable[str]) -> None:
        super().__init__()
        self._is_ready = is_ready
        self.services = tuple(dict.fromkeys(["", *services]))
        self._server_status.clear()  # the reference implementation starts "" as SERVING
        for service in self.services:
            self._server_status[service] = NOT_SERVING

    def status(self) -> int:
        return NOT_SERVING if self._gracefully_shutting_down or not self._is_ready() else SERVING

    async def Check(self, request: health_pb2.HealthCheckRequest, context) -> health_pb2.HealthCheckResponse:
        if request.service not in self.services:
            raise GrpcFailure(grpc.StatusCode.NOT_FOUND, "not_found", f"Unknown service {request.service[:64]!r}: "
                              f"this server reports on {', '.join(repr(s) for s in self.services)}.")
        return health_pb2.HealthCheckResponse(status=self.status())

    async def sync(self) -> None:
        """Tell Watch streams about a change (``set`` notifies only on a watched service)."""
        status = self.status()
        for service in self.services:
            if self._server_status.get(service) != status:
                await self.set(service, status)
