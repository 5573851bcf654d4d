"""The ports of one instance: the public PORT (and METRICS_PORT when set) and TorchServe's five
loopback listeners.

TorchServe's internal ports default to ``auto``: each start takes free loopback ports, so two
instances on one host (different ``PORT``s, different users or checkouts) never reach each
other's TorchServe. With fixed defaults (8080-8082, 7070-7071) the second instance's nginx
proxied to the first one's TorchServe, and its own TorchServe died on the taken ports.

The resolved numbers are written to ``RUN_DIR/ports.json`` for the tools that talk to the
running TorchServe (``scripts/manage/deploy_model.py``) and for operators.
"""

from __future__ import annotations

import errno
import json
import socket
from pathlib import Path

INTERNAL_PORTS = ("TS_INFERENCE_PORT", "TS_MANAGEMENT_PORT", "TS_METRICS_PORT",
                  "TS_GRPC_INFERENCE_PORT", "TS_GRPC_MANAGEMENT_PORT")
PORTS_FILE = "ports.json"
AUTO = "auto"


class PortInUse(RuntimeError):
    """A port the service must listen on is taken; the message is one line for the user."""


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def port_is_free(address: str, port: int) -> bool:
    """True when a listener could bind ``address:port`` now.

    SO_REUSEADDR as nginx and Netty set it, so a port held only by connections in TIME_WAIT
    (a service stopped a moment ago) counts as free, while any listener on it does not.
    """
    with socket.socket(_family(address), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_loopback_ports(count: int, avoid: set[int] = frozenset()) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1, none of them in ``avoid``."""
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            if sock.getsockname()[1] in avoid:
                sock.close()
                continue
            held.append(sock)  # held open until all are chosen, so no number repeats
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def check_public_ports(settings: dict[str, str]) -> int | None:
    """Refuse a busy PORT or METRICS_PORT with one line (PortInUse); return METRICS_PORT or None.
    Also asked by ``serve.sh --detach`` before it starts anything."""
    public = int(settings["PORT"])
    if not port_is_free(settings["BIND_ADDRESS"], public):
        raise PortInUse(f"PORT {public} on {settings['BIND_ADDRESS']} is already in use (another instance "
                        f"or program listens there): stop it or start this one with another PORT, "
                        f"e.g. PORT={public + 1} scripts/serve.sh")
    metrics = int(settings["METRICS_PORT"]) if settings.get("METRICS_PORT") else None
    if metrics is not None and not port_is_free(settings["BIND_ADDRESS"], metrics):
        raise PortInUse(f"METRICS_PORT {metrics} on {settings['BIND_ADDRESS']} is already in use (another instance "
                        f"or program listens there): stop it or start this one with another METRICS_PORT")
    from scripts.service.grpc_front.ports import grpc_port_decision  # (it imports this module)

    grpc_port_decision(settings)  # a GRPC_PORT you chose, taken: refused alike (the default taken: gRPC off)
    return metrics


def free_loopback_port() -> int:
    """One free port on 127.0.0.1 (the benchmarks' and container checks' private instances)."""
    return free_loopback_ports(1)[0]


def resolve_ports(settings: dict[str, str]) -> dict[str, str]:
    """Settings with every ``auto`` internal port replaced by a free one; every port checked.

    Raises PortInUse with one line naming the setting, the port and what to do.
    """
    resolved = dict(settings)
    public = int(settings["PORT"])
    metrics = check_public_ports(settings)
    fixed = {name: int(settings[name]) for name in INTERNAL_PORTS if settings[name] != AUTO}
    for name, port in fixed.items():
        if not port_is_free("127.0.0.1", port):
            raise PortInUse(f"{name}={port} is already in use on 127.0.0.1 (another TorchServe?): "
                            f"leave {name} unset ('{AUTO}') to take a free port at each start")
    automatic = [name for name in INTERNAL_PORTS if name not in fixed]
    taken = {public, *fixed.values()}
    if metrics is not None:  # free now, bound by nginx only later: no TorchServe port may take it meanwhile
        taken.add(metrics)
    # The supervisor's readiness responder (scripts/service/readiness.py), and gRPC's public port and
    # nginx's loopback server for the gRPC front (scripts/service/grpc_front/server.py).
    for held in ("READINESS_PORT", "GRPC_PORT", "GRPC_PROXY_PORT"):
        if settings.get(held):
            taken.add(int(settings[held]))
    chosen = free_loopback_ports(len(automatic), avoid=taken)
    resolved.update({name: str(port) for name, port in zip(automatic, chosen)})
    return resolved


def write_ports(run_dir: Path, settings: dict[str, str]) -> Path:
    """RUN_DIR/ports.json: the numbers this start really uses."""
    path = run_dir / PORTS_FILE
    data = {"PORT": int(settings["PORT"]), **{name: int(settings[name]) for name in INTERNAL_PORTS}}
    for optional in ("METRICS_PORT", "READINESS_PORT", "GRPC_PORT", "GRPC_PROXY_PORT"):
        if settings.get(optional):
            data[optional] = int(settings[optional])
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    temporary.replace(path)
    return path


def read_ports(run_dir: Path) -> dict[str, str] | None:
    """The ports a running instance wrote, as settings strings; None when it wrote none."""
    try:
        data = json.loads((run_dir / PORTS_FILE).read_text())
        return {name: str(int(data[name])) for name in ("PORT", *INTERNAL_PORTS)}
    except (OSError, ValueError, KeyError, TypeError):
        return None
