#!/usr/bin/env bash
# Build the real Dockerfile with podman (no Docker engine needed), run the image as production
# would (read-only root, tmpfs /tmp, its own entrypoint, user and HEALTHCHECK) and check it:
#
#   scripts/container/container_smoke.sh        # as root it apt-installs podman & co. when missing
#
# Writes a JSON report to SMOKE_REPORT (default test-artifacts/container_smoke.json); the
# checks, timings and sizes are done by scripts/container/container_smoke.py. Containers are removed on
# exit; the image is kept, so a rerun only rebuilds what changed (the image a rebuild replaces is
# removed: each is ~7 GB).
#
#   SMOKE_TAG=resnet50-serve:smoke            the image built from ./Dockerfile
#   SMOKE_COLD=1       remove the smoke image, the stand-in base and podman's dangling build
#                      layers first (a cold-cache run; prunes every dangling podman image)
#
# Stand-in base image. The Dockerfile starts FROM python:3.11-slim-bookworm; with no registry
# reachable, the script builds a local stand-in under that name once (debootstrap, ~1 min) and
# reuses it. It differs from the official image in exactly these ways:
#   - Python is Debian's python3 3.11.2 (/usr/bin/python3.11, Debian's patches), not a
#     CPython 3.11.x compiled into /usr/local; python, python3, pip, pip3 in /usr/local/bin
#     are symlinks to Debian's (the official image has the real files there);
#   - venv/ensurepip and pip come from Debian's python3-venv/python3-pip (pip 23.0.1; the
#     official image bundles a newer pip), plus Debian's python3-setuptools/-wheel;
#     Debian's EXTERNALLY-MANAGED marker is removed, as the official image has none;
#   - a debootstrap minbase (+ ca-certificates, netbase, tzdata, as the official image
#     installs) with today's bookworm packages, apt lists and caches emptied; the Debian
#     mirrors are the ones this host's apt uses (bookworm, -updates, -security), as are the
#     stand-in's apt sources; same ENV PATH, LANG, CMD;
#   - labelled org.opencontainers.image.description="local stand-in ..." (the smoke image
#     inherits the label); no GPG_KEY/PYTHON_VERSION environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
started_epoch=$(date +%s.%N)

BASE=localhost/python:3.11-slim-bookworm
TAG=${SMOKE_TAG:-resnet50-serve:smoke}
REPORT=${SMOKE_REPORT:-test-artifacts/container_smoke.json}
WORK=${SMOKE_WORK_DIR:-/tmp/resnet50-container-smoke}
RUN_LABEL="resnet50-container-smoke=$$"
say() { printf '[container-smoke] %s\n' "$*" >&2; }

source scripts/container/podman_host.sh
ensure_podman
configure_podman
mkdir -p "$(dirname "$REPORT")"

cleanup() {
  podman ps -aq --filter "label=$RUN_LABEL" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  remove_rootfs "$WORK/rootfs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${SMOKE_COLD:-0}" = 1 ]; then
  say "cold run: removing $TAG, $BASE and dangling build layers"
  podman rmi -f "$TAG" "$BASE" >/dev/null 2>&1 || true
  podman image prune -f >/dev/null
fi

# --- the stand-in base (cached) ----------------------------------------------------------
base_started=$SECONDS
base_cached=true
if ! podman image exists "$BASE"; then
  base_cached=false
  say "making the stand-in $BASE (debootstrap bookworm minbase)"
  debian_rootfs bookworm "$WORK/rootfs" python3,python3-venv,python3-pip,python-is-python3,ca-certificates,netbase,tzdata
  root=$WORK/rootfs
  rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
  for name in python python3 pip pip3; do ln -sf "/usr/bin/$name" "$root/usr/local/bin/$name"; done
  tar -C "$root" -c . | podman import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change 'LABEL org.opencontainers.image.description="local stand-in for python:3.11-slim-bookworm: Debian python3 3.11.2 (scripts/container/container_smoke.sh)"' \
    - "$BASE" >/dev/null
  remove_rootfs "$root"
fi
base_s=$((SECONDS - base_started))

# --- the project's Dockerfile, unchanged -------------------------------------------------
# --format docker: the OCI format has no HEALTHCHECK (podman would drop it with a warning).
# This host reaches PyPI through a TLS-intercepting proxy whose CA only the host trusts: the
# build's pip gets the host's CA bundle through a pip.conf bind-mounted at /etc/xdg/pip for
# the RUN steps only (not in any layer; an empty /etc/xdg/pip mountpoint stays behind).
host_ca_bundle
BUILD_LOG=${REPORT%.json}.build.log
say "building $TAG from ./Dockerfile (packages from the hash-checked locks); log: $BUILD_LOG"
build_started=$SECONDS
previous_image=$(podman image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
if ! podman build --pull=never --format docker \
    --volume "$WORK/pip:/etc/xdg/pip:ro" -t "$TAG" . >"$BUILD_LOG" 2>&1; then
  tail -40 "$BUILD_LOG" >&2
  say "build failed (full log: $BUILD_LOG)"
  exit 1
fi
build_s=$((SECONDS - build_started))
# The image this build replaced (a changed lock or Dockerfile): ~7 GB that nothing names any more.
# Its layers shared with the new image stay; podman refuses while a container still uses it.
current_image=$(podman image inspect --format '{{.Id}}' "$TAG")
if [ -n "$previous_image" ] && [ "$previous_image" != "$current_image" ]; then
  podman rmi "$previous_image" >/dev/null 2>&1 && say "removed the image this build replaced (${previous_image:0:12})" || true
fi

# --- run and check -------------------------------------------------------------------------
python3 -m scripts.container.container_smoke --image "$TAG" --base "$BASE" --label "$RUN_LABEL" \
  --report "$REPORT" \
  --base-seconds "$base_s" --base-cached "$base_cached" --build-seconds "$build_s" \
  --started-epoch "$started_epoch"
