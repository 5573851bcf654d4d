"""gRPC's contract and configuration: the .proto against Triton's and KServe's field numbers,
GRPC_PORT (validation, a busy port chosen or defaulted), and nginx's loopback server for the front."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from handler.settings_table import BY_NAME
from scripts.client.kserve_venv import KServeClientUnavailable, kserve_client_python
from scripts.service.grpc_front import ports as grpc_ports
from scripts.service.grpc_front.server import start_grpc_front
from scripts.service.grpc_front.nginx import HEADER_ROOM
from scripts.service.grpc_front.proto import load_protocol
from scripts.service.ports import PortInUse, check_public_ports, resolve_ports, write_ports
from scripts.service.readiness import ReadinessServer
from scripts.service.render_config import render_all
from scripts.service.settings import SettingsError, load_settings
from tests.support import free_ports

NO_ENV_FILE = Path("/nonexistent/.env")


# ---------------------------------------------------------------------------------- the .proto
def fields_of(messages: dict) -> dict[str, dict[str, tuple[int, int, int]]]:
    """message -> field -> (number, type, label), for every message of ours."""
    return {name: {f.name: (f.number, f.type, getattr(f, "label", 0)) for f in cls.DESCRIPTOR.fields}
            for name, cls in messages.items()}


def test_proto_matches_tritons_field_numbers_and_package():
    from tritonclient.grpc import service_pb2

    ours = load_protocol()
    assert ours.service == "inference.GRPCInferenceService"
    for name, fields in fields_of(ours.messages).items():
        theirs = service_pb2
        for part in name.split("."):
            theirs = getattr(theirs, part)
        their_fields = {f.name: (f.number, f.type, getattr(f, "label", 0)) for f in theirs.DESCRIPTOR.fields}
        assert fields.items() <= their_fields.items(), name
    # Every RPC tritonclient names for what this service does, with the same types.
    triton_service = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method in ours.methods.values():
        theirs = triton_service.methods_by_name[method.name]
        assert theirs.input_type.name == method.request.DESCRIPTOR.name
        assert theirs.output_type.name == method.response.DESCRIPTOR.name


KSERVE_FIELDS = """
import json
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
def walk(d, prefix=""):
    out = {prefix + d.name: {f.name: f.number for f in d.fields}}
    for n in d.nested_types:
        if not n.GetOptions().map_entry:
            out.update(walk(n, prefix + d.name + "."))
    return out
found = {}
for d in pb.DESCRIPTOR.message_types_by_name.values():
    found.update(walk(d))
print(json.dumps({"package": pb.DESCRIPTOR.package, "messages": found}))
"""


def test_proto_matches_kserves_field_numbers():
    """KServe's own proto, read in its own venv (it cannot be imported beside tritonclient.grpc).

    The venv is looked for when the test runs, not when it is collected: in a fresh clone it does not
    exist yet at collection, and the integration tests that run first make it (a collection-time skip
    once kept this test from running in every CI run). Made here when missing; skipped, with the
    reason, only where it cannot be made."""
    try:
        python = kserve_client_python()
    except KServeClientUnavailable as error:
        pytest.skip(str(error))
    result = subprocess.run([str(python), "-c", KSERVE_FIELDS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    kserve = json.loads(result.stdout)
    assert kserve["package"] == "inference"
    compared = 0
    for name, fields in fields_of(load_protocol().messages).items():
        numbers = {field: number for field, (number, _, _) in fields.items()}
        theirs = kserve["messages"][name]
        # Triton's double_param and uint64_param are additions KServe's InferParameter lacks.
        assert {k: v for k, v in numbers.items() if k in theirs} == {k: theirs[k] for k in numbers if k in theirs}
        assert set(numbers) - set(theirs) <= {"double_param", "uint64_param"}, name
        compared += 1
    assert compared >= 15


# ---------------------------------------------------------------------------------- GRPC_PORT
def test_grpc_port_default_and_validation():
    assert load_settings({}, NO_ENV_FILE)["GRPC_PORT"] == BY_NAME["GRPC_PORT"].default
    assert load_settings({"GRPC_PORT": ""}, NO_ENV_FILE)["GRPC_PORT"] == ""
    for bad in ({"GRPC_PORT": "grpc"}, {"GRPC_PORT": "0"}, {"GRPC_PORT": "65536"},
                {"GRPC_PORT": "6000", "PORT": "6000"}, {"GRPC_PORT": "9090", "METRICS_PORT": "9090"},
                {"GRPC_PORT": "7001", "TS_INFERENCE_PORT": "7001"}):
        with pytest.raises(SettingsError, match="GRPC_PORT"):
            load_settings(bad, NO_ENV_FILE)


@pytest.fixture
def busy_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def settings_with(grpc_port: int, tmp_path: Path) -> dict[str, str]:
    port = free_ports(1)[0]
    return load_settings({"PORT": str(port), "BIND_ADDRESS": "127.0.0.1", "RUN_DIR": str(tmp_path),
                          "GRPC_PORT": str(grpc_port)}, NO_ENV_FILE)


def test_a_busy_grpc_port_you_chose_is_refused_in_one_line(busy_port, tmp_path):
    settings = settings_with(busy_port, tmp_path)
    with pytest.raises(PortInUse) as refused:
        check_public_ports(settings)  # (serve.sh --detach asks this before starting anything)
    message = str(refused.value)
    assert message.startswith(f"GRPC_PORT {busy_port} on 127.0.0.1 is already in use") and "\n" not in message
    with pytest.raises(PortInUse):  # named in the environment, even with the default's value
        grpc_ports.grpc_port_decision(settings, environ={"GRPC_PORT": str(busy_port)})


def test_the_default_grpc_port_taken_turns_grpc_off_with_one_warning(busy_port, tmp_path, monkeypatch):
    """The second instance beside another, started with only PORT changed, still starts."""
    monkeypatch.setattr(grpc_ports, "DEFAULT_GRPC_PORT", str(busy_port))
    monkeypatch.delenv("GRPC_PORT", raising=False)
    settings = settings_with(busy_port, tmp_path)
    assert check_public_ports(settings) is None  # not refused
    warning = grpc_ports.grpc_port_decision(settings, environ={})
    assert warning == (f"GRPC_PORT {busy_port} is in use (another instance?): gRPC is off for this instance; "
                       "set GRPC_PORT=N to serve it on port N")
    relay = RecordingRelay()
    assert start_grpc_front(settings, None, relay) is None
    assert settings["GRPC_PORT"] == "" and relay.lines == [("WARNING", warning, "grpc_port_in_use")]
    # ... and nginx's config then has no server for a front.
    assert "real_ip_header X-Grpc-Client-Address" not in (render_all(settings) / "nginx.conf").read_text()


def test_a_free_grpc_port_is_served_and_kept_out_of_torchserves_choices(tmp_path, monkeypatch):
    grpc_port = free_ports(1)[0]
    settings = resolve_ports(settings_with(grpc_port, tmp_path))
    readiness = ReadinessServer("resnet50", tmp_path)
    relay = RecordingRelay()
    front = start_grpc_front(settings, readiness, relay)
    try:
        assert front is not None and front.port == grpc_port
        assert relay.lines[0][0] == "INFO" and relay.lines[0][2] == "grpc_listening"
        proxy = int(settings["GRPC_PROXY_PORT"])
        internal = {int(settings[name]) for name in settings if name.startswith("TS_") and name.endswith("_PORT")}
        assert proxy not in internal | {grpc_port, int(settings["PORT"])}
        recorded = json.loads(write_ports(tmp_path, settings).read_text())
        assert recorded["GRPC_PORT"] == grpc_port and recorded["GRPC_PROXY_PORT"] == proxy
        # Its metrics join GET /metrics' readiness text.
        assert "resnet50_grpc_requests_total" in readiness.httpd.responder.answer("/metrics", "r").body
    finally:
        if front:
            front.stop(0)
        readiness.httpd.server_close()
    avoided = []
    from scripts.service import ports

    choose = ports.free_loopback_ports
    monkeypatch.setattr(ports, "free_loopback_ports", lambda count, avoid: avoided.append(avoid) or choose(count, avoid))
    resolve_ports({**settings_with(grpc_port, tmp_path), "GRPC_PROXY_PORT": "45999"})
    assert grpc_port in avoided[0] and 45999 in avoided[0]


class RecordingRelay:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str]] = []

    def log(self, level: str, message: str, **fields) -> None:
        self.lines.append((level, message, fields.get("event")))

    def emit(self, entry: dict) -> None:
        pass


# ------------------------------------------------------------------------ nginx's server for it
def rendered_nginx(tmp_path: Path, **overrides: str) -> str:
    settings = load_settings({"RUN_DIR": str(tmp_path), **overrides}, NO_ENV_FILE)
    settings.update({"GRPC_PROXY_PORT": "45678", "READINESS_PORT": "45679", "TS_INFERENCE_PORT": "45680",
                     "TS_MANAGEMENT_PORT": "45681", "TS_METRICS_PORT": "45682"})
    if "GRPC_PORT" in overrides:
        settings["GRPC_PORT"] = overrides["GRPC_PORT"]
    return (render_all(settings) / "nginx.conf").read_text()


def servers(nginx: str) -> dict[str, str]:
    blocks = nginx.split("\n    server {\n")[1:]
    return {re.search(r"listen ([^;]+);", block).group(1): block for block in blocks}


def test_the_fronts_server_applies_the_http_routes_limits(tmp_path):
    nginx = rendered_nginx(tmp_path, MAX_INFLIGHT="7", RATE_LIMIT_BURST="3", MAX_FILE_SIZE="2048",
                           REQUEST_TIMEOUT="9", API_KEYS="k" * 20)
    server = servers(nginx)["127.0.0.1:45678"]
    assert "${" not in nginx
    for line in ("server_name _;",  # the inflight zone's key: MAX_INFLIGHT counts HTTP and gRPC together
                 "limit_conn inflight 7;", "limit_req zone=per_client burst=3 nodelay;",
                 "if ($api_key_ok = 0) { return 401; }", "real_ip_header X-Grpc-Client-Address;",
                 "set_real_ip_from 127.0.0.1;", f"client_max_body_size {2048 + HEADER_ROOM};",
                 "proxy_set_header X-Wire-Format v2;", "proxy_read_timeout 9s;",
                 "proxy_pass http://torchserve_inference/predictions/resnet50/$v2_version;"):
        assert line in server, line
    public = servers(nginx)["0.0.0.0:5000"]
    assert "limit_conn inflight 7;" in public and "server_name _;" in public


def test_no_server_for_the_front_when_grpc_is_off(tmp_path):
    assert "listen 127.0.0.1:45678" not in rendered_nginx(tmp_path, GRPC_PORT="")
    settings = load_settings({"RUN_DIR": str(tmp_path)}, NO_ENV_FILE)  # render_config.py on its own
    assert "real_ip_header X-Grpc-Client-Address" not in (render_all(settings) / "nginx.conf").read_text()


def error_bodies(server: str) -> dict[str, set[tuple[str, str]]]:
    """Named v2 error location -> its (code, message) pairs."""
    found = {}
    for match in re.finditer(r"location (@v2_\w+) \{(.*?)\n        \}", server, re.S):
        found[match.group(1)] = set(re.findall(r'"error":"((?:[^"\\]|\\.)*)","code":"([^"]+)"', match.group(2)))
    return found


def test_the_fronts_errors_are_the_public_v2_routes_errors(tmp_path):
    nginx = rendered_nginx(tmp_path)
    ours, public = error_bodies(servers(nginx)["127.0.0.1:45678"]), error_bodies(servers(nginx)["0.0.0.0:5000"])
    assert len(ours) >= 8
    for name, bodies in ours.items():
        if name in ("@v2_bad_request", "@v2_not_found"):  # nginx's own errors on a route no client names
            continue
        assert name in public, name
        if name == "@v2_unauthorized":  # how to send the key differs; the code does not
            assert {code for _, code in bodies} == {code for _, code in public[name]} == {"unauthorized"}
            continue
        assert bodies == public[name], name


@pytest.mark.skipif(not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists(), reason="no nginx")
def test_nginx_accepts_the_rendered_config(tmp_path):
    rendered_nginx(tmp_path, API_KEYS="k" * 20, RATE_LIMIT_RPS="5")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path / "nginx"), "-c", str(tmp_path / "config" / "nginx.conf"),
                             "-e", "stderr"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
