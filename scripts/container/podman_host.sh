#!/usr/bin/env bash
# Sourced by the host-side podman checks (container_smoke.sh, debian_first_run.sh): podman on this
# host, a containers.conf that works here, the host's own Debian mirrors and its CA bundle for pip.
# Needs WORK (a scratch directory) and say() from the caller.

# The first Debian mirror URI in this host's apt sources (deb822 .sources or one-line .list):
# "main" = one that is not the security archive, "security" = the security archive. Nothing in
# this repository names a mirror: the host's own are used.
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

# podman and what it needs here, apt-installed when missing (as root).
ensure_podman() {
  # catatonit: the pause process of `podman kube play`'s pods.
  local packages=(podman buildah runc debootstrap slirp4netns uidmap fuse-overlayfs netavark aardvark-dns iptables catatonit)
  local missing=() package
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "missing: ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and rerun as root"
    exit 1
  fi
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Two host limits break podman's defaults here: Debian's crun refuses hybrid cgroups, and root
# cannot raise rlimits past the hard limit. A containers.conf of our own (not /etc) fixes both.
configure_podman() {
  local nofile nproc
  mkdir -p "$WORK"
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 8192 ]; then nproc=8192; fi
  cat >"$WORK/containers.conf" <<CONF
[engine]
runtime = "runc"
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
CONF
  export CONTAINERS_CONF="$WORK/containers.conf"
}

# This host may reach pip's index through a TLS-intercepting proxy whose CA only the host trusts:
# a copy of the host's CA bundle, handed to pip in containers (never put in an image layer).
host_ca_bundle() {
  mkdir -p "$WORK/pip"
  cp /etc/ssl/certs/ca-certificates.crt "$WORK/pip/host-ca-certificates.crt"
  printf '[global]\ncert = /etc/xdg/pip/host-ca-certificates.crt\n' >"$WORK/pip/pip.conf"
}

# An interrupted debootstrap can leave /proc, /sys mounted inside its root: unmount, then remove.
remove_rootfs() {
  local rootfs="$1"
  awk -v dir="$rootfs/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$rootfs"
}

# A Debian minbase made with debootstrap from the host's mirrors, with those mirrors as its apt sources.
#   debian_rootfs SUITE DIR [debootstrap --include list]
debian_rootfs() {
  local suite="$1" root="$2" include="${3:-}" mirror security
  mirror=$(host_mirror main)
  security=$(host_mirror security)
  if [ -z "$mirror" ]; then
    say "cannot find a Debian mirror in this host's apt sources (/etc/apt/sources.list*)"
    exit 1
  fi
  remove_rootfs "$root"
  debootstrap --variant=minbase ${include:+--include="$include"} "$suite" "$root" "$mirror" \
    >"$WORK/debootstrap-$suite.log" 2>&1 || { tail -20 "$WORK/debootstrap-$suite.log" >&2; exit 1; }
  rm -f "$root/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$mirror" "$suite" "$suite"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [ -n "$security" ]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$suite"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } >"$root/etc/apt/sources.list.d/debian.sources"
  # The host's own apt options about its mirror's Release files (e.g. a snapshot mirror's dates).
  grep -hsE '^Acquire::Check-(Valid-Until|Date)' /etc/apt/apt.conf.d/* >"$root/etc/apt/apt.conf.d/99host-mirror" || true
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  # debootstrap leaves /proc and /sys mounted in the new root: not something to pack into an image.
  awk -v dir="$root/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
}
