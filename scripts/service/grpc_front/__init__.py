"""The Open Inference Protocol v2 over gRPC on GRPC_PORT, a front in the supervisor process.

``server`` (the gRPC services) -> ``translate`` (ModelInfer <-> the HTTP v2 binary request) -> ``upstream``
(a keep-alive HTTP client to nginx's loopback server for the front, rendered by ``nginx``); ``proto`` loads
config/grpc_inference.proto; ``health`` answers grpc.health.v1 from the readiness snapshot; ``metrics``
counts calls for GET /metrics; ``ports`` decides whether GRPC_PORT is served.
"""
