"""Run the pod KServe would make from deploy/kserve under `podman kube play`, call it as KServe's clients would.

    python -m scripts.container.kserve_play [--image localhost/resnet50-serve:smoke] [--report FILE]
        [--runtime deploy/kserve/servingruntime.yaml] [--inferenceservice deploy/kserve/inferenceservice.yaml]
        [--model-dir DIR]

The pod is scripts/container/kserve_pod.py's: the ServingRuntime's kserve-container with the InferenceService
merged in, /mnt/models a read-only volume holding the archive, port 8080. For podman it gets the changes
for_kube_play names (the model volume a host directory, the local image, loopback host ports, the
metrics port published). The archive is the image's own (/app/model_store/resnet50.mar, copied out of the
image, so its handler code is the image's), unless --model-dir names a directory holding one.

Everything scripts/container/kube_play.py checks of the Deployment's pod is checked here too (readiness
within the startup budget, /health, /live, /info, /predict, v2 readiness, /metrics on METRICS_PORT only,
the securityContext from inside, env, limits, liveness healthcheck, graceful stop, nothing left), and:
KServe v1 (/v1/models/resnet50 and :predict); the model store read-only inside the container; KServe's
own Python client (InferenceRESTClient, v1 and v2, from its venv: scripts/client/kserve_venv.sh) and
tritonclient (HTTP); grpc-v2 on the published GRPC_PORT with tritonclient.grpc and KServe's
InferenceGRPCClient. JSON report (default test-artifacts/kserve_play.json, or KSERVE_PLAY_REPORT).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from handler.settings_table import BY_NAME
from scripts import REPO_ROOT
from scripts.client.kserve_venv import KServeClientUnavailable, run_in_kserve_venv
from scripts.container import kube_play
from scripts.container.kserve_pod import (
    INFERENCE_SERVICE,
    MODEL_MOUNT,
    RUNTIME,
    env_value,
    for_kube_play,
    kserve_pod,
    played_ports,
)
from scripts.container.kube_play import KubePlay, make_jpeg, summary, write_containers_conf
from scripts.container.kube_pod import LOOPBACK
from scripts.container.podman_calls import free_port, http, podman, write_report

DEFAULT_REPORT = REPO_ROOT / "test-artifacts" / "kserve_play.json"
IMAGE_ARCHIVE = "/app/model_store/resnet50.mar"  # built into the image by the Dockerfile
MODEL = "resnet50"


def load(path: Path) -> dict:
    import yaml

    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    if len(docs) != 1:
        raise ValueError(f"{path}: expected one object")
    return docs[0]


class KServePlay(KubePlay):
    """KubePlay with the KServe pod instead of the Deployment's, and KServe's clients as extra checks."""

    def make_pod(self) -> tuple[dict, dict[int, int], dict]:
        runtime, isvc = load(self.args.runtime), load(self.args.inferenceservice)
        pod = kserve_pod(runtime, isvc)
        self.model_dir = self.args.model_dir or self.work / "models"
        host_ports = {port: free_port() for port in played_ports(pod)}
        source = {"runtime": str(self.args.runtime), "inferenceservice": str(self.args.inferenceservice),
                  "model_dir": str(self.model_dir), "kserve_pod": pod}
        return for_kube_play(pod, self.args.image, self.model_dir, host_ports), host_ports, source

    def preflight(self) -> None:
        super().preflight()
        if self.args.model_dir is None:
            self.copy_archive_out_of_the_image()
        self.model_dir.chmod(0o755)  # the container's uid 10001 reads it through the read-only mount
        self.report["model_dir_listing"] = sorted(p.name for p in self.model_dir.iterdir())

    def copy_archive_out_of_the_image(self) -> None:
        self.model_dir.mkdir(parents=True, exist_ok=True)
        name = f"{self.pod_name}-archive"
        podman("create", "--name", name, self.args.image, "true")
        try:
            podman("cp", f"{name}:{IMAGE_ARCHIVE}", str(self.model_dir / Path(IMAGE_ARCHIVE).name), timeout=300)
        finally:
            podman("rm", "-f", name, check=False)
        (self.model_dir / Path(IMAGE_ARCHIVE).name).chmod(0o644)

    def check_api(self, model_name: str) -> None:
        super().check_api(model_name)
        status, body = http("GET", f"{self.base_url}/v1/models/{model_name}")
        self.check("v1_model_ready_200", status == 200 and body == {"name": model_name, "ready": True},
                   status=status, body=body)
        image = make_jpeg()
        request = json.dumps({"instances": [{"data": base64.b64encode(image).decode()}]}).encode()
        status, body = http("POST", f"{self.base_url}/v1/models/{model_name}:predict", request, "application/json")
        results = (body or {}).get("predictions") or []
        self.check("v1_predict_200", status == 200 and len(results) == 1 and results[0].get("status") == 200,
                   status=status, top1=(results[0].get("predictions") or [{}])[0] if results else None)
        self.check_clients(image)

    def check_clients(self, image: bytes) -> None:
        path = self.work / "client-image.jpg"
        path.write_bytes(image)
        try:
            code, answer = run_in_kserve_venv("scripts/client/kserve_rest_check.py", "--url", self.base_url,
                                              "--image", str(path), "--top", "3")
        except KServeClientUnavailable as error:
            code, answer = 1, {"error": str(error)}
        self.report["kserve_client"] = answer
        self.check("kserve_rest_client_v1_v2", code == 0 and answer.get("ok") is True,
                   checks=answer.get("checks"), error=answer.get("error"))
        self.report["tritonclient"] = triton = tritonclient_answer(self.base_url, image)
        self.check("tritonclient_http", triton.get("ok") is True, **{k: v for k, v in triton.items() if k != "ok"})
        self.check_grpc(path, image)

    def check_grpc(self, path: Path, image: bytes) -> None:
        """grpc-v2: the Open Inference Protocol over gRPC on GRPC_PORT, published like the HTTP port, with
        tritonclient.grpc and KServe's own gRPC client."""
        grpc_port = int(env_value(self.container, "GRPC_PORT") or BY_NAME["GRPC_PORT"].default)
        target = f"{LOOPBACK}:{self.host_ports[grpc_port]}"
        self.report["tritonclient_grpc"] = triton = tritonclient_answer(target, image, protocol="grpc")
        self.check("tritonclient_grpc", triton.get("ok") is True, **{k: v for k, v in triton.items() if k != "ok"})
        try:
            code, answer = run_in_kserve_venv("scripts/client/kserve_grpc_check.py", "--url", target,
                                              "--image", str(path), "--top", "3")
        except KServeClientUnavailable as error:
            code, answer = 1, {"error": str(error)}
        self.report["kserve_grpc_client"] = answer
        self.check("kserve_grpc_client", code == 0 and answer.get("ok") is True, error=answer.get("error"),
                   classification=answer.get("classification"),
                   text_file=(answer.get("text_file") or {}).get("status"))

    def check_inside(self, inspect: dict) -> None:
        super().check_inside(inspect)
        mount = next((m for m in inspect.get("Mounts", []) if m.get("Destination") == MODEL_MOUNT), {})
        probe = podman("exec", self.container_name, "sh", "-c", f"touch {MODEL_MOUNT}/.write-probe", check=False)
        said = probe.stderr.decode(errors="replace").strip()
        listing = podman("exec", self.container_name, "ls", "-l", MODEL_MOUNT, check=False).stdout.decode().split("\n")
        self.check("model_store_read_only", probe.returncode != 0 and "Read-only file system" in said
                   and mount.get("RW") is False, podman_rw=mount.get("RW"), write=said or "succeeded",
                   listing=[line for line in listing if line.strip()])

    def cleanup(self) -> None:
        if self.report.get("model_dir_listing") is not None:  # what the pod left in its model store
            after = sorted(p.name for p in self.model_dir.iterdir()) if self.model_dir.exists() else []
            self.check("model_dir_unchanged", after == self.report["model_dir_listing"], listing=after)
        super().cleanup()


def tritonclient_answer(target: str, image: bytes, protocol: str = "http") -> dict:
    """tritonclient's health calls and one inference with the classification extension, over HTTP
    (``target`` a base URL) or gRPC (``target`` HOST:PORT); tritonclient lives in the service's test venv."""
    try:
        import numpy as np
        import tritonclient.grpc as grpcclient
        import tritonclient.http as httpclient
    except ImportError as error:
        return {"ok": False, "error": f"tritonclient[http,grpc] is not installed here: {error}"}
    client_module = httpclient if protocol == "http" else grpcclient
    try:
        client = client_module.InferenceServerClient(target.removeprefix("http://"))
        tensor = client_module.InferInput("image", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([image], dtype=np.object_))
        output = client_module.InferRequestedOutput("probabilities", class_count=3)
        result = client.infer(MODEL, [tensor], outputs=[output])
        top = [v.decode() for v in result.as_numpy("probabilities")[0]]
        answer = {"server_live": client.is_server_live(), "server_ready": client.is_server_ready(),
                  "model_ready": client.is_model_ready(MODEL), "classification": top}
    except Exception as error:  # noqa: BLE001 - reported as the check's failure
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    answer["ok"] = all(answer[k] for k in ("server_live", "server_ready", "model_ready")) and len(top) == 3
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=kube_play.DEFAULT_IMAGE, help="a local podman image (never pulled)")
    parser.add_argument("--runtime", type=Path, default=RUNTIME)
    parser.add_argument("--inferenceservice", type=Path, default=INFERENCE_SERVICE)
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="a directory holding the archive (default: the image's own, copied out)")
    parser.add_argument("--report", type=Path, default=Path(os.environ.get("KSERVE_PLAY_REPORT", DEFAULT_REPORT)))
    args = parser.parse_args(argv)
    args.plain_down = False
    args.liveness_consequence = False
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in `finally`

    play = KServePlay(args)
    conf_dir = None
    if "CONTAINERS_CONF" not in os.environ:
        conf_dir = Path(tempfile.mkdtemp(prefix="resnet50-kserve-play-conf-"))
        os.environ["CONTAINERS_CONF"] = str(write_containers_conf(conf_dir))
    code = 1
    try:
        code = play.run()
    except Exception as error:  # noqa: BLE001 - reported, then the run fails
        play.check("kube_play_run_completed", False, error=f"{type(error).__name__}: {error}")
    finally:
        if conf_dir:
            shutil.rmtree(conf_dir, ignore_errors=True)
        report = play.report
        report["result"] = "pass" if code == 0 else "fail"
        write_report(report, args.report, summary(report).replace("kube play:", "KServe pod under kube play:", 1))
    return code


if __name__ == "__main__":
    sys.exit(main())
