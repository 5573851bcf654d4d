# ResNet-50 on TorchServe behind nginx, one container: HTTP on port 5000, the Open Inference Protocol over gRPC on 8081.
#   docker build -t resnet50-serve .
#   docker run --rm -p 5000:5000 resnet50-serve          (stop with: docker stop -t 45 ...)
# Real ImageNet weights are downloaded while building when the build has network access;
# otherwise the build falls back to random weights, loudly (/info says pretrained: false).
# To archive your own ResNet-50: put the checkpoint (labels, golden set, ...) in model_inputs/
# and name them (model_inputs/README.md):
#   --build-arg MODEL_WEIGHTS=model_inputs/my.ckpt --build-arg MODEL_LABELS=model_inputs/labels.json
#   --build-arg BUILD_MAR_ARGS="--preprocessing resize=256 crop=224 --golden model_inputs/golden"
# Proven without a Docker engine by scripts/container/container_smoke.sh (podman; see docs/deployment.md).

# A fixed Debian release, not the floating python:3.11-slim (that tag moved from bookworm to trixie in
# Aug 2025): bookworm, with Python 3.11 and Java 17. (The service runs on trixie too, with Java 21 and
# Python 3.13: scripts/container/debian_first_run.sh proves the README's commands there.)
FROM python:3.11-slim-bookworm

# Packages come only from the hash-checked locks (requirements/locks/, made by scripts/lock.sh): PyTorch
# is pip's default index's Linux build, CUDA and nvidia-* wheels included (a 5.9 GB Python layer). The
# former TORCH_INDEX_URL (CPU-only wheels from another index) is refused: those files have other hashes
# (and +cpu versions) than the lock, and installing them unchecked is what the lock exists to prevent.
# A CPU image needs a lock of its own made against that index (docs/deployment.md "Supply chain").
ARG TORCH_INDEX_URL=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    RUN_DIR=/tmp/run \
    PORT=5000

# Layer 1: the two system processes of the service: TorchServe's Java frontend and nginx.
# curl: `podman kube play` runs the manifest's httpGet probes as `curl -f` inside the container
# (the kubelet probes from outside and needs nothing in the image).
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless nginx-light curl \
 && rm -rf /var/lib/apt/lists/*

# Layer 2: pip and PyTorch (largest, changes least), from their locks only, so a change to the other
# pins reuses it. Layer 3: the rest of the locked stack, and the SBOM of the result: cyclonedx-bom runs
# from a throwaway venv of its own (requirements/locks/sbom.txt), removed in the same RUN, so neither it
# nor its dependencies are in the image; only /app/sbom.cdx.json (CycloneDX JSON of /opt/venv) is.
# --require-hashes: every file's sha256 must be in the lock, whichever index or mirror served it.
COPY requirements/locks/pip.txt requirements/locks/torch.txt /app/requirements/locks/
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
      echo "TORCH_INDEX_URL is no longer supported: the image installs only the hash-checked locks" \
           "(requirements/locks/); see docs/deployment.md \"Supply chain\"" >&2; exit 1; fi \
 && python -m venv /opt/venv \
 && pip install --require-hashes -r /app/requirements/locks/pip.txt \
 && pip install --require-hashes -r /app/requirements/locks/torch.txt
COPY requirements/ /app/requirements/
RUN pip install --require-hashes -r /app/requirements/locks/runtime.txt \
 && python -m venv /tmp/sbom-venv \
 && /tmp/sbom-venv/bin/pip install --require-hashes -r /app/requirements/locks/pip.txt \
 && /tmp/sbom-venv/bin/pip install --require-hashes -r /app/requirements/locks/sbom.txt \
 && /tmp/sbom-venv/bin/cyclonedx-py environment --output-reproducible --of JSON -o /app/sbom.cdx.json /opt/venv \
 && rm -rf /tmp/sbom-venv

# Layer 4: the code, then layer 5: the model archive built from it.
WORKDIR /app
COPY handler/ /app/handler/
COPY scripts/ /app/scripts/
COPY config/ /app/config/
COPY web/ /app/web/
COPY model_store/.gitkeep /app/model_store/.gitkeep
COPY model_inputs/ /app/model_inputs/
# Declared here, not at the top: a build argument's value is part of the cache key of every RUN
# after it, so a build with your own model reuses the Java, PyTorch and package layers.
ARG MODEL_WEIGHTS=""
ARG MODEL_LABELS=""
ARG BUILD_MAR_ARGS=""
RUN MODEL_WEIGHTS="$MODEL_WEIGHTS" MODEL_LABELS="$MODEL_LABELS" python -m scripts.archive.build_mar --force $BUILD_MAR_ARGS \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app

# Non-root; the image needs no writable path but RUN_DIR (/tmp/run): it runs with
#   --read-only --tmpfs /tmp:rw,size=512m   (TorchServe unpacks the ~95 MB archive there).
USER 10001
EXPOSE 5000 8081
STOPSIGNAL SIGTERM
# podman/buildah keep HEALTHCHECK only with --format docker (the OCI format has none).
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
  CMD python -c "import os,sys,urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT','5000'), timeout=4).status == 200 else 1)"

# The supervisor is PID 1: it handles SIGTERM (drain nginx, then stop TorchServe), reaps
# children, and exits non-zero if either process dies so the runtime restarts the container.
ENTRYPOINT ["python", "-m", "scripts.service.supervisor"]
