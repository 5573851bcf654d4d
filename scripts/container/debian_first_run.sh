#!/usr/bin/env bash
# The README's first run on a fresh Debian 13 (trixie), in a podman container, as root:
#
#   scripts/container/debian_first_run.sh            # serve as root from /root, then as an unprivileged user
#   FIRST_RUN_SUITE=1 scripts/container/debian_first_run.sh   # ... and run scripts/test.sh there too (long)
#
# The container's root filesystem is a debootstrap minbase of trixie made from this host's own Debian
# mirrors (cached as localhost/debian:trixie-firstrun; `podman rmi` it to remake). It has no Python, no
# Java and no nginx: scripts/serve.sh must install them as a user's first run does. The checkout is a clean
# clone of this repository's HEAD (uncommitted changes are not in it, as they would not be in a user's).
# The checks and the report (FIRST_RUN_REPORT, default test-artifacts/debian13_first_run.json) are
# scripts/container/debian_first_run.py's. As root on Debian; podman & co. are apt-installed when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

SUITE=trixie
IMAGE=localhost/debian:$SUITE-firstrun
REPORT=${FIRST_RUN_REPORT:-test-artifacts/debian13_first_run.json}
WORK=${FIRST_RUN_WORK_DIR:-/tmp/resnet50-first-run}
RUN_LABEL="resnet50-first-run=$$"
say() { printf '[debian-first-run] %s\n' "$*" >&2; }

source scripts/container/podman_host.sh
ensure_podman
configure_podman
host_ca_bundle
mkdir -p "$(dirname "$REPORT")"

cleanup() {
  podman ps -aq --filter "label=$RUN_LABEL" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  remove_rootfs "$WORK/rootfs"
  rm -rf "$WORK/clone"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

base_started=$SECONDS
if ! podman image exists "$IMAGE"; then
  say "making $IMAGE (debootstrap $SUITE minbase from this host's mirrors)"
  # ca-certificates: every Debian install has it; nothing of the project's is preinstalled.
  debian_rootfs "$SUITE" "$WORK/rootfs" ca-certificates
  tar -C "$WORK/rootfs" -c . | podman import --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL org.opencontainers.image.description="Debian trixie minbase for the first-run check (scripts/container/debian_first_run.sh)"' \
    - "$IMAGE" >/dev/null
  remove_rootfs "$WORK/rootfs"
fi
base_s=$((SECONDS - base_started))

rm -rf "$WORK/clone"
git clone --quiet . "$WORK/clone"
python3 -m scripts.container.debian_first_run --image "$IMAGE" --label "$RUN_LABEL" --source "$WORK/clone" \
  --ca-bundle "$WORK/pip/host-ca-certificates.crt" --report "$REPORT" --base-seconds "$base_s" \
  ${FIRST_RUN_SUITE:+--suite}
