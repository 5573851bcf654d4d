"""KServe v1's routes in the rendered nginx.conf: the guards /predict has (API key, rate limit, MAX_INFLIGHT,
timeouts, the headers the handler must never take from a client) apply to POST /v1/models/NAME:predict too,
and the readiness route is open like /health. Read from the config itself, without starting nginx."""

from __future__ import annotations

import re

import pytest

from scripts.service.render_config import CONFIG_DIR, render_text, template_values
from scripts.service.settings import load_settings

KEY = "unit-test-key-0123456789"


@pytest.fixture(scope="module")
def nginx_conf(tmp_path_factory) -> str:
    run_dir = tmp_path_factory.mktemp("run")
    env = {"RUN_DIR": str(run_dir), "API_KEYS": KEY, "ENV_FILE": str(run_dir / "none.env"), "RATE_LIMIT_RPS": "5",
           "TS_INFERENCE_PORT": "18080", "TS_MANAGEMENT_PORT": "18081", "TS_METRICS_PORT": "18082",
           "TS_GRPC_INFERENCE_PORT": "18083", "TS_GRPC_MANAGEMENT_PORT": "18084"}
    settings = load_settings(env)
    return render_text((CONFIG_DIR / "nginx.conf.template").read_text(encoding="utf-8"), template_values(settings))


def location(conf: str, opener: str) -> str:
    """The body of the location whose line starts with ``opener`` (braces balanced)."""
    start = conf.index(f"location {opener} {{")
    depth, index = 0, conf.index("{", start)
    for index in range(conf.index("{", start), len(conf)):
        depth += {"{": 1, "}": -1}.get(conf[index], 0)
        if depth == 0:
            break
    return conf[start:index + 1]


PREDICT = "= /predict"
V2_INFER = "~ ^/v2/models/(?<v2_model>[^/]+)(/versions/(?<v2_version>[A-Za-z0-9._-]+))?/infer$"
V1_PREDICT = "~ ^/v1/models/(?<v1_model>[^/:]+):predict$"
GUARDS = ("if ($api_key_ok = 0) { return 401; }", "limit_req zone=per_client", "limit_conn inflight",
          'proxy_set_header X-Health-Probe "";', 'proxy_set_header describe "";',
          'proxy_set_header X-Top-K "";', "proxy_read_timeout", "proxy_intercept_errors on;")


@pytest.mark.parametrize("guard", GUARDS)
def test_v1_predict_has_every_guard_of_the_other_inference_routes(nginx_conf, guard):
    v1 = location(nginx_conf, V1_PREDICT)
    assert guard in v1
    assert guard in location(nginx_conf, V2_INFER)
    if guard != 'proxy_set_header X-Top-K "";':  # /predict passes ?top_k= on
        assert guard in location(nginx_conf, PREDICT)


def test_v1_predict_marks_its_wire_format_and_sends_raw_bytes(nginx_conf):
    v1 = location(nginx_conf, V1_PREDICT)
    assert "proxy_set_header X-Wire-Format v1;" in v1
    assert "proxy_set_header Content-Type application/octet-stream;" in v1
    assert re.search(r'if \(\$v1_model != "resnet50"\) \{ return 404 ', v1)
    assert "proxy_pass http://torchserve_inference/predictions/$v1_model;" in v1
    # Every route a client could send X-Wire-Format through overwrites it.
    for opener in (PREDICT, V2_INFER, V1_PREDICT):
        assert "proxy_set_header X-Wire-Format" in location(nginx_conf, opener)


def test_v1_readiness_is_open_and_the_model_list_is_guarded(nginx_conf):
    ready = location(nginx_conf, "~ ^/v1/models/[^/:]+$")
    assert "api_key_ok" not in ready and "proxy_pass http://readiness;" in ready
    models = location(nginx_conf, "= /v1/models")
    assert "if ($api_key_ok = 0) { return 401; }" in models and "limit_req zone=per_client" in models


def test_v1_errors_are_kserves_shape(nginx_conf):
    for opener in ("= /v1/models", "~ ^/v1/models/[^/:]+$", V1_PREDICT):
        pages = re.findall(r"error_page [0-9 ]+ = (@\w+);", location(nginx_conf, opener))
        # @shed answers in the route's own format: $error_format maps /v1/ to the protocols' shape (below).
        assert pages and all(page.startswith("@v2_") or page in ("@client_timeout", "@shed") for page in pages), pages
    assert '"~^/v[12]/"      v2;' in nginx_conf
    fallback = location(nginx_conf, "~ ^/v1(/|$)")
    assert '"code":"not_found"' in fallback and '"error":"No such route.' in fallback


def test_allowed_methods_cover_the_v1_routes(nginx_conf):
    assert '"~^/v1/models/[^/:]+:predict$"   "POST";' in nginx_conf
    assert '"~^/v1/models(/[^/:]+)?$"   "GET, HEAD";' in nginx_conf
