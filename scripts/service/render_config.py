#!/usr/bin/env python3
"""Render config/*.template into RUN_DIR/config/ from the settings (env + .env).

Templates use ``${NAME}`` for settings (like envsubst in the official nginx image); a name
that is not a known setting is an error, so a typo never ships as a literal. nginx's own
``$variables`` (lower case, no braces) are left alone.

Usage: scripts/service/render_config.py  (prints the rendered directory)
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import sys
from pathlib import Path

from scripts.service.grpc_front.nginx import grpc_server_block
from scripts.service.settings import REPO_ROOT, api_keys, load_settings
from scripts.service.ts_tokens import ApiKeys

CONFIG_DIR = REPO_ROOT / "config"
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# nginx directories for pid and temp paths (kept empty: bodies stay in memory).
NGINX_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

# nginx has no conditionals and servers share no locations: the /metrics routes are a template
# of their own, rendered into exactly one server (docs/api.md "GET /metrics (operators)").
# (".part", not ".template": render_all renders every *.template as a file of its own.)
METRICS_ROUTES_PART = CONFIG_DIR / "nginx-metrics-routes.part"
METRICS_SERVER_PART = CONFIG_DIR / "nginx-metrics-server.part"
SHED_ROUTES_PART = CONFIG_DIR / "nginx-shed-routes.part"  # in every server with a limit_conn route



def template_values(settings: dict[str, str], keys: ApiKeys | None = None) -> dict[str, str]:
    """Settings plus the few values derived from them (and TorchServe's API keys, once issued)."""
    values = dict(settings)
    # Before TorchServe has issued its keys nginx would be refused by it (401 -> JSON errors).
    values["TS_INFERENCE_KEY"] = keys.inference if keys else "not-issued-yet"
    values["TS_MANAGEMENT_KEY"] = keys.management if keys else "not-issued-yet"
    timeout = int(settings["REQUEST_TIMEOUT"])
    # TorchServe kills a worker whose response times out; nginx must give up well before.
    values["TS_RESPONSE_TIMEOUT"] = str(max(2 * timeout, timeout + 30))
    values["CONFIG_DIR"] = str(CONFIG_DIR)
    values["WEB_DIR"] = str(REPO_ROOT / "web")
    # scripts/service/readiness.py's port, picked free by the supervisor at each start; rendered without it
    # (scripts/service/render_config.py alone), a closed port stands in and /health says 503.
    values.setdefault("READINESS_PORT", "9")
    values["NGINX_USER"] = nginx_user_directive()
    # TorchServe matches registration URLs against this Java regex: the store's path is quoted
    # (\Q...\E, backslashes doubled for the properties format), so '.' or '+' in it are literal.
    values["ALLOWED_URLS"] = "file://" + "\\\\Q" + settings["MODEL_STORE"] + "/" + "\\\\E" + ".*"
    values["TS_MAX_REQUEST_SIZE"] = str(int(settings["MAX_FILE_SIZE"]) + 65536)
    # nginx does not count requests whose limit key is empty: that is how "off" is spelt.
    rate = int(settings["RATE_LIMIT_RPS"])
    values["RATE_LIMIT_KEY"] = "$binary_remote_addr" if rate > 0 else '""'
    values["RATE_LIMIT_ZONE_RPS"] = str(max(rate, 1))
    allowed = [] if settings["METRICS_ALLOW"].strip().lower() == "none" else settings["METRICS_ALLOW"].split(",")
    values["METRICS_ALLOW_RULES"] = "".join(f"allow {entry.strip()}; " for entry in allowed) + "deny all;"
    # The hold's own ceiling plus a margin: nginx must not give up on the readiness responder first.
    values["SHED_PROXY_TIMEOUT_S"] = str(int(settings["SHED_HOLD_MS"]) // 1000 + 2)
    values["SHED_ROUTES"] = render_text(SHED_ROUTES_PART.read_text(encoding="utf-8"), values)
    values["METRICS_ROUTES"], values["METRICS_SERVER"] = metrics_blocks(values)
    values["GRPC_SERVER"] = grpc_server_block(values, render_text)  # scripts/service/grpc_front/nginx.py; "" = no gRPC
    values["SERVED_ARCHIVE"], values["SERVED_VERSION"] = served_archive(settings)
    keys = api_keys(settings)
    values["API_KEY_DEFAULT"] = "0" if keys else "1"
    values["API_KEY_ENTRIES"] = "".join(f'        "{key}" 1;\n' for key in keys)
    return values


def metrics_blocks(values: dict[str, str]) -> tuple[str, str]:
    """nginx.conf's METRICS_ROUTES (in the public server) and METRICS_SERVER (after it): the
    /metrics routes in the public server while METRICS_PORT is empty, else in a server on
    BIND_ADDRESS:METRICS_PORT, and then no /metrics on PORT for anyone (its catch-all 404)."""
    routes = render_text(METRICS_ROUTES_PART.read_text(encoding="utf-8"), values)
    if not values["METRICS_PORT"]:
        return routes, ""
    return "", render_text(METRICS_SERVER_PART.read_text(encoding="utf-8"), {**values, "METRICS_ROUTES": routes})


def nginx_user_directive() -> str:
    """Run nginx's workers as the user who starts the service.

    Started as root, nginx drops its workers to ``nobody``, which cannot read a checkout inside a
    directory only root may enter (``/root``, every ``mktemp -d``): the page, the contract and
    /info's include then fail. Dropping privileges there buys nothing either: the TorchServe
    worker that decodes the untrusted images runs as the invoking user anyway. As any other user
    nginx cannot switch users, so the directive is left out (nginx would warn that it is ignored).
    The container runs everything as uid 10001.
    """
    if os.geteuid() != 0:
        return ""
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};"


def served_archive(settings: dict[str, str]) -> tuple[str, str]:
    """The archive and version to load at start: scripts/manage/deploy_model.py's last default if its
    archive is still in the model store, else the service's own MODEL_NAME.mar."""
    name, store = settings["MODEL_NAME"], Path(settings["MODEL_STORE"])
    try:
        default = json.loads((store / f"{name}.deployed.json").read_text())["default"]
        if (store / default["archive"]).is_file():
            return str(default["archive"]), str(default["version"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return f"{name}.mar", settings["MODEL_VERSION"]


def render_text(template: str, values: dict[str, str]) -> str:
    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template uses unknown setting ${{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(substitute, template)


def render_all(settings: dict[str, str], keys: ApiKeys | None = None) -> Path:
    """Write config.properties, nginx.conf and log4j2.xml into RUN_DIR/config; return that dir."""
    run_dir = Path(settings["RUN_DIR"])
    out = run_dir / "config"
    out.mkdir(parents=True, exist_ok=True)
    for name in NGINX_DIRS:
        (run_dir / "nginx" / name).mkdir(parents=True, exist_ok=True)
    (run_dir / "tmp").mkdir(parents=True, exist_ok=True)
    values = template_values(settings, keys)
    for template in sorted(CONFIG_DIR.glob("*.template")):
        target = out / template.name.removesuffix(".template")
        target.write_text(render_text(template.read_text(encoding="utf-8"), values), encoding="utf-8")
        target.chmod(0o600)  # nginx.conf holds TorchServe's keys and maybe API keys
    shutil.copyfile(CONFIG_DIR / "log4j2.xml", out / "log4j2.xml")
    return out


def main() -> int:
    print(render_all(load_settings()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
