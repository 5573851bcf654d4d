"""nginx.conf's GRPC_SERVER: the loopback server the gRPC front sends its requests through
(config/nginx-grpc-server.part), rendered only while the front runs (GRPC_PORT set and a loopback
port chosen for it by the supervisor: GRPC_PROXY_PORT)."""

from __future__ import annotations

from typing import Callable

from scripts import REPO_ROOT

GRPC_SERVER_PART = REPO_ROOT / "config" / "nginx-grpc-server.part"
# The JSON header that the front puts before the tensors (names, shapes, parameters): room for it
# above MAX_FILE_SIZE, the limit of the gRPC message itself (as TorchServe's max_request_size has).
HEADER_ROOM = 65536


def proxy_body_limit(max_file_size: str) -> str:
    return str(int(max_file_size) + HEADER_ROOM)


def grpc_server_block(values: dict[str, str], render: Callable[[str, dict[str, str]], str]) -> str:
    """The rendered server, or "" when the front is off (GRPC_PORT empty) or has no port yet
    (render_config.py run on its own: no front runs then)."""
    if not values.get("GRPC_PORT") or not values.get("GRPC_PROXY_PORT"):
        return ""
    text = GRPC_SERVER_PART.read_text(encoding="utf-8")
    return render(text, {**values, "GRPC_PROXY_BODY_LIMIT": proxy_body_limit(values["MAX_FILE_SIZE"])})
