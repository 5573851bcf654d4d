# ResNet-50 on TorchServe behind nginx, one container, port 5000.
#   docker build -t resnet50-serve .
#   docker run --rm -p 5000:5000 resnet50-serve          (stop with: docker stop -t 45 ...)
# Real ImageNet weights are downloaded while building when the build has network access;
# otherwise the build falls back to random weights, loudly (/info says pretrained: false).
# To archive your own ResNet-50: put the checkpoint (labels, golden set, ...) in model_inputs/
# and name them (model_inputs/README.md):
#   --build-arg MODEL_WEIGHTS=model_inputs/my.ckpt --build-arg MODEL_LABELS=model_inputs/labels.json
#   --build-arg BUILD_MAR_ARGS="--preprocessing resize=256 crop=224 --golden model_inputs/golden"
# Proven without a Docker engine by scripts/container/container_smoke.sh (podman; see README "Docker").

# bookworm, not the floating python:3.11-slim: that tag moved to Debian trixie (Aug 2025),
# which has no openjdk-17 (TorchServe's tested Java); bookworm is also what the
# development machine and scripts/serve.sh run on.
FROM python:3.11-slim-bookworm

# The package index torch and torchvision come from; empty = pip's default index, whose Linux
# wheels are the CUDA build (+ nvidia-* wheels: a 5.9 GB Python layer). Point it at an index
# of PyTorch's CPU-only wheels to get ~1.1 GB instead (README "Docker").
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
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless nginx-light curl \
 && rm -rf /var/lib/apt/lists/*

# Layer 2: PyTorch (largest, changes least), then layer 3: the rest of the pinned stack.
COPY requirements/ /app/requirements/
RUN python -m venv /opt/venv \
 && pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} -r /app/requirements/torch.txt \
 && pip install -r /app/requirements/runtime.txt

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
EXPOSE 5000
STOPSIGNAL SIGTERM
# podman/buildah keep HEALTHCHECK only with --format docker (the OCI format has none).
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
  CMD python -c "import os,sys,urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT','5000'), timeout=4).status == 200 else 1)"

# The supervisor is PID 1: it handles SIGTERM (drain nginx, then stop TorchServe), reaps
# children, and exits non-zero if either process dies so the runtime restarts the container.
ENTRYPOINT ["python", "-m", "scripts.service.supervisor"]
