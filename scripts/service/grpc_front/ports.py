"""GRPC_PORT at start: free, refused, or (the shared default, taken) off for this instance.

Two instances on one host are started with only PORT changed (README: "beside another instance").
Both would want gRPC's default port, and only the first can have it. So a busy port is refused in
one line, like a busy PORT, when someone chose it (the environment names GRPC_PORT, or it is not
the default); the default taken is one WARNING and this instance runs without gRPC. A .env copied
from .env.example writes the default too: that is not a choice of port.
"""

from __future__ import annotations

import os

from handler.settings_table import BY_NAME
from scripts.service.ports import PortInUse, port_is_free

DEFAULT_GRPC_PORT = BY_NAME["GRPC_PORT"].default


def chosen_by_user(settings: dict[str, str], environ: dict[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return "GRPC_PORT" in environ or settings["GRPC_PORT"] != DEFAULT_GRPC_PORT


def grpc_port_decision(settings: dict[str, str], environ: dict[str, str] | None = None) -> str | None:
    """None when GRPC_PORT is off or free; a WARNING line when the default is taken (gRPC then stays
    off); PortInUse (one line) when a chosen port is taken."""
    port = settings.get("GRPC_PORT", "")
    if not port or port_is_free(settings["BIND_ADDRESS"], int(port)):
        return None
    if chosen_by_user(settings, environ):
        raise PortInUse(f"GRPC_PORT {port} on {settings['BIND_ADDRESS']} is already in use (another instance or "
                        f"program listens there): stop it, start this one with another GRPC_PORT, or GRPC_PORT= "
                        f"(empty) for no gRPC")
    return (f"GRPC_PORT {port} is in use (another instance?): gRPC is off for this instance; "
            f"set GRPC_PORT=N to serve it on port N")
