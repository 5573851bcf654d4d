#!/usr/bin/env bash
# Build the real Dockerfile with podman (no Docker engine needed), run the image as production
# would (read-only root, tmpfs /tmp, its own entrypoint, user and HEALTHCHECK) and check it:
#
#   scripts/container/container_smoke.sh        # as root it apt-installs podman & co. when missing
#
# Writes a JSON report to SMOKE_REPORT (default test-artifacts/container_smoke.json); the
# checks, timings and sizes are done by scripts/container/container_smoke.py. Containers are removed on
# exit; the images are kept, so a rerun only rebuilds what changed.
#
#   SMOKE_TAG=resnet50-serve:smoke            the image built from ./Dockerfile
#   SMOKE_TORCH_INDEX_URL=         the package index for torch/torchvision; empty (the default)
#       means pip's default index, like the Dockerfile's own default. There, Linux wheels of
#       torch are the CUDA build (+ nvidia-* wheels, several GB): the image is that much bigger
#       than one built from a CPU-only index, and the report says which index was used.
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
TORCH_INDEX_URL=${SMOKE_TORCH_INDEX_URL:-}
REPORT=${SMOKE_REPORT:-test-artifacts/container_smoke.json}
WORK=${SMOKE_WORK_DIR:-/tmp/resnet50-container-smoke}
RUN_LABEL="resnet50-container-smoke=$$"
say() { printf '[container-smoke] %s\n' "$*" >&2; }

# The first Debian mirror URI in this host's apt sources (deb822 .sources or one-line .list):
# "main" = one that is not the security archive, "security" = the security archive.
host_mirror() {
  local kind="$1" uris
  uris=$( (grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | sed 's/^URIs:[[:space:]]*//' | tr ' ' '\n'
           grep -hE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
             | sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/') | grep -E '^https?://' || true)
  if [ "$kind" = security ]; then
    printf '%s\n' "$uris" | grep -m1 -- '-security' || true
  else
    printf '%s\n' "$uris" | grep -v -- '-security' | grep -m1 . || true
  fi
}

# --- podman and friends ----------------------------------------------------------------
packages=(podman buildah runc debootstrap slirp4netns uidmap fuse-overlayfs netavark aardvark-dns iptables)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing: ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and rerun as root"
    exit 1
  fi
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Two host limits break podman's defaults here: Debian's crun refuses hybrid cgroups, and root
# cannot raise rlimits past the hard limit. A containers.conf of our own (not /etc) fixes both.
mkdir -p "$WORK" "$(dirname "$REPORT")"
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 8192 ]; then nproc=8192; fi
cat >"$WORK/containers.conf" <<EOF
[engine]
runtime = "runc"
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
EOF
export CONTAINERS_CONF="$WORK/containers.conf"

remove_rootfs() {  # an interrupted debootstrap can leave /proc, /sys mounted inside it
  awk -v dir="$WORK/rootfs/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$WORK/rootfs"
}
cleanup() {
  podman ps -aq --filter "label=$RUN_LABEL" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  remove_rootfs
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
  remove_rootfs
  # The host's own Debian mirrors (its apt sources), so nothing here names a mirror.
  mirror=$(host_mirror main)
  security=$(host_mirror security)
  if [ -z "$mirror" ]; then
    say "cannot find a Debian mirror in this host's apt sources (/etc/apt/sources.list*)"
    exit 1
  fi
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,netbase,tzdata \
    bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  root=$WORK/rootfs
  rm -f "$root/etc/apt/sources.list" "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
  {
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [ -n "$security" ]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "$security"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } >"$root/etc/apt/sources.list.d/debian.sources"
  for name in python python3 pip pip3; do ln -sf "/usr/bin/$name" "$root/usr/local/bin/$name"; done
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | podman import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change 'LABEL org.opencontainers.image.description="local stand-in for python:3.11-slim-bookworm: Debian python3 3.11.2 (scripts/container/container_smoke.sh)"' \
    - "$BASE" >/dev/null
  remove_rootfs
fi
base_s=$((SECONDS - base_started))

# --- the project's Dockerfile, unchanged -------------------------------------------------
# --format docker: the OCI format has no HEALTHCHECK (podman would drop it with a warning).
# This host reaches PyPI through a TLS-intercepting proxy whose CA only the host trusts: the
# build's pip gets the host's CA bundle through a pip.conf bind-mounted at /etc/xdg/pip for
# the RUN steps only (not in any layer; an empty /etc/xdg/pip mountpoint stays behind).
mkdir -p "$WORK/pip"
cp /etc/ssl/certs/ca-certificates.crt "$WORK/pip/host-ca-certificates.crt"
printf '[global]\ncert = /etc/xdg/pip/host-ca-certificates.crt\n' >"$WORK/pip/pip.conf"
BUILD_LOG=${REPORT%.json}.build.log
say "building $TAG from ./Dockerfile (torch index: ${TORCH_INDEX_URL:-the default of pip}); log: $BUILD_LOG"
build_started=$SECONDS
if ! podman build --pull=never --format docker --build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL" \
    --volume "$WORK/pip:/etc/xdg/pip:ro" -t "$TAG" . >"$BUILD_LOG" 2>&1; then
  tail -40 "$BUILD_LOG" >&2
  say "build failed (full log: $BUILD_LOG)"
  exit 1
fi
build_s=$((SECONDS - build_started))

# --- run and check -------------------------------------------------------------------------
python3 -m scripts.container.container_smoke --image "$TAG" --base "$BASE" --label "$RUN_LABEL" \
  --report "$REPORT" --torch-index-url "$TORCH_INDEX_URL" \
  --base-seconds "$base_s" --base-cached "$base_cached" --build-seconds "$build_s" \
  --started-epoch "$started_epoch"
