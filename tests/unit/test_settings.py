"""Settings (.env + environment), template rendering, and the generated docs in step with SETTINGS."""

from pathlib import Path

import pytest

from scripts.service.render_config import render_all, render_text, template_values
from scripts.service.settings import SETTINGS, SettingsError, load_settings, read_dotenv

REPO = Path(__file__).resolve().parents[2]


def test_dotenv_parsing(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('# comment\nPORT=6000\nexport LOG_FORMAT="text"\nWORKERS = 2  # two\n\nBROKEN LINE\n')
    assert read_dotenv(env_file) == {"PORT": "6000", "LOG_FORMAT": "text", "WORKERS": "2"}


def test_environment_wins_over_dotenv(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=6000\nWORKERS=2\n")
    settings = load_settings({"PORT": "7000"}, env_file)
    assert settings["PORT"] == "7000" and settings["WORKERS"] == "2" and settings["LOG_LEVEL"] == "INFO"


@pytest.mark.parametrize("override", [
    {"PORT": "0"}, {"PORT": "abc"}, {"PORT": "8080", "TS_INFERENCE_PORT": "8080"}, {"TS_METRICS_PORT": "0"},
    {"TS_GRPC_INFERENCE_PORT": "automatic"}, {"RUN_DIR": "/tmp/a$b"}, {"MODEL_STORE": "/tmp/a\"b"},
    {"LOG_FORMAT": "xml"}, {"DEVICE": "tpu"}, {"MAX_ASPECT_RATIO": "0.5"}, {"MAX_ASPECT_RATIO": "wide"},
    {"SELFTEST_TOLERANCE": "2"}, {"FAST_JPEG_DECODE": "maybe"},
    {"DEFAULT_TOP_K": "1001"}, {"MODEL_NAME": "../evil"}, {"BIND_ADDRESS": "0.0.0.0; evil"},
    {"PRECISION": "int3"}, {"TS_JAVA_HEAP": "lots"},
    {"METRICS_PORT": "0"}, {"METRICS_PORT": "65536"}, {"METRICS_PORT": "metrics"},
    {"PORT": "9090", "METRICS_PORT": "9090"}, {"TS_METRICS_PORT": "9090", "METRICS_PORT": "9090"},
])
def test_invalid_settings_are_refused(tmp_path, override):
    with pytest.raises(SettingsError):
        load_settings(override, tmp_path / "none.env")


def test_render_refuses_unknown_placeholders():
    with pytest.raises(KeyError):
        render_text("listen ${NOT_A_SETTING};", {"PORT": "1"})
    assert render_text("listen ${PORT}; set $x $request_id;", {"PORT": "1"}) == "listen 1; set $x $request_id;"


def test_rendered_configs_are_consistent(tmp_path):
    settings = load_settings({"RUN_DIR": str(tmp_path), "MAX_FILE_SIZE": "2048", "REQUEST_TIMEOUT": "7",
                              "TS_INFERENCE_PORT": "9100"}, tmp_path / "none.env")
    out = render_all(settings)
    nginx = (out / "nginx.conf").read_text()
    properties = (out / "config.properties").read_text()
    assert "client_max_body_size 2048;" in nginx and "proxy_read_timeout 7s;" in nginx
    assert "server 127.0.0.1:9100" in nginx
    assert "max_request_size=67584" in properties
    timeout = int(template_values(settings)["TS_RESPONSE_TIMEOUT"])
    assert timeout > 7 and f'"responseTimeout": {timeout}' in properties
    for line in properties.splitlines():
        if line.endswith("_address=") or "_address=" in line:
            assert "127.0.0.1" in line
    # The model API is on only behind TorchServe's tokens, and only for archives in the store.
    assert "enable_model_api=true" in properties and "disable_token_authorization=false" in properties
    # Registration URLs must lie in the store; its path is quoted as a Java regex literal.
    assert f"allowed_urls=file://\\\\Q{settings['MODEL_STORE']}/\\\\E.*" in properties
    assert "${" not in nginx and "${" not in properties
    # Before TorchServe issues its keys, every route to it carries a placeholder key (refused: JSON errors).
    assert_every_torchserve_route_carries(nginx, "not-issued-yet", "not-issued-yet")


def assert_every_torchserve_route_carries(nginx: str, inference_key: str, management_key: str) -> None:
    """Each location that proxies to TorchServe's inference or management API sends that API's key,
    and no other Authorization header is set anywhere (whatever routes the config has)."""
    blocks = [block for block in nginx.split("location ")[1:] if "proxy_pass http://torchserve_" in block]
    assert blocks
    for block in blocks:
        key = inference_key if "proxy_pass http://torchserve_inference" in block else management_key
        assert f'proxy_set_header Authorization "Bearer {key}";' in block, block[:200]
    assert nginx.count("proxy_set_header Authorization") == len(blocks)


def test_keys_and_deployed_archive_are_rendered(tmp_path):
    from scripts.service.ts_tokens import ApiKeys

    store = tmp_path / "store"
    store.mkdir()
    settings = load_settings({"RUN_DIR": str(tmp_path / "run"), "MODEL_STORE": str(store)}, tmp_path / "none.env")
    nginx = (render_all(settings, ApiKeys("inf-key", "mgmt-key")) / "nginx.conf").read_text()
    assert_every_torchserve_route_carries(nginx, "inf-key", "mgmt-key")
    assert "load_models=resnet50=resnet50.mar" in (tmp_path / "run/config/config.properties").read_text()
    # A recorded deployment is what the next start loads, while its archive is there.
    (store / "resnet50.deployed.json").write_text('{"default": {"version": "2.0", "archive": "resnet50-2.0.mar"}}')
    assert template_values(settings)["SERVED_ARCHIVE"] == "resnet50.mar"
    (store / "resnet50-2.0.mar").write_bytes(b"")
    properties = (render_all(settings) / "config.properties").read_text()
    assert "load_models=resnet50=resnet50-2.0.mar" in properties
    assert '{"resnet50": {"2.0": {"defaultVersion": true, "marName": "resnet50-2.0.mar"' in properties


def nginx_servers(settings) -> list[str]:
    """The rendered nginx.conf's server blocks, in order."""
    nginx = (render_all(settings) / "nginx.conf").read_text()
    assert "${" not in nginx
    return nginx.split("\n    server {\n")[1:]


def metrics_route(server: str) -> str:
    start = server.index("        location = /metrics {")
    return server[start:server.index("        location @empty_text {", start)]


def test_metrics_stay_on_the_public_port_by_default(tmp_path):
    settings = load_settings({"RUN_DIR": str(tmp_path)}, tmp_path / "none.env")
    assert settings["METRICS_PORT"] == ""
    [public] = nginx_servers(settings)
    assert "listen 0.0.0.0:5000;" in public
    assert "allow 127.0.0.1; allow ::1; deny all;" in metrics_route(public)
    assert "location = /_metrics/readiness {" in public


def test_metrics_port_moves_the_route_to_a_server_of_its_own(tmp_path):
    default = nginx_servers(load_settings({"RUN_DIR": str(tmp_path / "a")}, tmp_path / "none.env"))[0]
    settings = load_settings({"RUN_DIR": str(tmp_path / "b"), "METRICS_PORT": "9090",
                              "METRICS_ALLOW": "10.0.0.0/8"}, tmp_path / "none.env")
    public, metrics = nginx_servers(settings)
    assert "listen 0.0.0.0:5000;" in public and "listen 0.0.0.0:9090;" in metrics
    # On PORT /metrics falls to the catch-all 404 for everyone (no route, no 405 for POST either).
    assert "location = /metrics" not in public and "/_metrics/readiness" not in public
    assert "location = /predict" not in metrics and "location = /health" not in metrics
    # The same route as on PORT today (its allow list aside), with the readiness gauges appended.
    assert metrics_route(metrics).replace("allow 10.0.0.0/8; deny all;", "") == \
        metrics_route(default).replace("allow 127.0.0.1; allow ::1; deny all;", "")
    assert "add_after_body /_metrics/readiness;" in metrics and "location = /_metrics/readiness {" in metrics
    # Everything else on the metrics port is a JSON 404; nginx's own errors are JSON too.
    assert "location / {\n            return 404;" in metrics
    for status in ("400", "404", "405", "503"):
        assert f"return {status} '{{\"error\":{{\"code\":" in metrics, status


def test_busy_metrics_port_is_refused_in_one_line(tmp_path, monkeypatch):
    import json
    import socket

    from scripts.service import ports
    from scripts.service.ports import PortInUse, resolve_ports, write_ports
    from tests.support import free_ports

    port = free_ports(1)[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        settings = load_settings({"RUN_DIR": str(tmp_path), "BIND_ADDRESS": "127.0.0.1", "PORT": str(port),
                                  "METRICS_PORT": str(busy)}, tmp_path / "none.env")
        with pytest.raises(PortInUse) as refused:
            resolve_ports(settings)
    message = str(refused.value)
    assert f"METRICS_PORT {busy} on 127.0.0.1 is already in use" in message and "\n" not in message
    # Free, it is kept out of TorchServe's automatic choices (nginx binds it only later) and recorded.
    avoided = []
    choose = ports.free_loopback_ports
    monkeypatch.setattr(ports, "free_loopback_ports", lambda count, avoid: avoided.append(avoid) or choose(count, avoid))
    resolved = resolve_ports(settings)
    assert avoided and busy in avoided[0] and port in avoided[0]
    assert json.loads(write_ports(tmp_path, resolved).read_text())["METRICS_PORT"] == busy


def test_every_setting_is_documented():
    """The generated files, as committed (tests/unit/test_docs.py also fails while they are stale)."""
    example = (REPO / ".env.example").read_text()
    reference = (REPO / "docs/configuration.md").read_text()
    for setting in SETTINGS:
        assert f"\n{setting.name}={setting.default}\n" in example, \
            f"{setting.name}={setting.default} (the default) missing from .env.example"
        shown = f"`{setting.default}`" if setting.default else "(empty)"
        assert f"| `{setting.name}` | {shown} |" in reference, \
            f"{setting.name} with its default {shown} missing from docs/configuration.md"
    # .env.example is itself a valid .env: read back, it gives every default and nothing else.
    assert read_dotenv(REPO / ".env.example") == {s.name: s.default for s in SETTINGS}


def test_every_variable_the_code_reads_is_in_the_one_table():
    """A setting read anywhere (supervisor, scripts, handler) but missing from the table would
    have no default, no validation and no documentation."""
    import re

    from handler.settings_table import RULES

    not_settings = {"PREDICT_URL", "API_KEY"}  # the client's (scripts/client/predict.py), not the service's
    read = set()
    pattern = re.compile(r"(?:environ\.get\(|environ\[|getenv\(|_setting\()\s*[\"']([A-Z][A-Z0-9_]+)[\"']")
    for path in [*(REPO / "handler").rglob("*.py"), *(REPO / "scripts").rglob("*.py")]:
        if path.parent.name == "container":  # host-side podman checks with options of their own
            continue
        read |= set(pattern.findall(path.read_text(encoding="utf-8")))
    names = {s.name for s in SETTINGS}
    assert read, "the scan found nothing: the pattern is wrong"
    assert read - not_settings <= names, sorted(read - not_settings - names)
    assert set(RULES) == names  # every setting says what a valid value is
    for setting in SETTINGS:
        setting.parse()  # every default is valid under its own rule


def test_handler_reads_the_same_defaults_and_refuses_a_bad_value_as_a_failed_start(monkeypatch, model_dir, capsys):
    from handler.resnet50_handler import ResNet50Handler
    from handler.settings import HandlerSettings
    from handler.settings_table import BY_NAME
    from tests.unit.ts_context import worker_context

    defaults = HandlerSettings()
    assert defaults.max_file_size == int(BY_NAME["MAX_FILE_SIZE"].default)
    assert defaults.max_aspect_ratio == float(BY_NAME["MAX_ASPECT_RATIO"].default)
    assert defaults.selftest_tolerance == float(BY_NAME["SELFTEST_TOLERANCE"].default)
    monkeypatch.setenv("MAX_ASPECT_RATIO", "0.5")
    with pytest.raises(SettingsError, match="MAX_ASPECT_RATIO must be between 1 and 1000000, got 0.5"):
        ResNet50Handler().initialize(worker_context(model_dir))
    assert '"event": "model_load_failed"' in capsys.readouterr().out.replace('":"', '": "')
