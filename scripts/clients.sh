#!/usr/bin/env bash
# The real clients the protocol tests drive, from Debian's packages:
# ccache and gcc (ccache's remote storage), gradle and a JDK (Gradle's HTTP
# build cache), bazel-bootstrap (Bazel's HTTP cache), tar and zstd (what
# @actions/cache archives with; without zstd it falls back to gzip). Installed once, when
# missing; a test whose client is absent skips and says so, so a machine
# without root still runs the rest. npm clients (turbo, nx, @actions/cache) are installed by
# their tests themselves, pinned.
set -euo pipefail

need=()
command -v ccache >/dev/null || need+=(ccache)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v gradle >/dev/null || need+=(gradle)
command -v javac >/dev/null || need+=(default-jdk-headless)
command -v bazel >/dev/null || need+=(bazel-bootstrap)
command -v tar >/dev/null || need+=(tar)
command -v zstd >/dev/null || need+=(zstd)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "clients: missing ${need[*]} and not root: their tests will skip" >&2
  exit 0
fi
log=/tmp/hoard-clients-apt.log
lock=(-o DPkg::Lock::Timeout=600)
echo "clients: installing ${need[*]} (apt, log: $log)" >&2
apt-get "${lock[@]}" update >>"$log" 2>&1 || { echo "clients: apt-get update failed (see $log)" >&2; exit 0; }
DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y --no-install-recommends "${need[@]}" >>"$log" 2>&1 ||
  echo "clients: apt-get install failed (see $log): their tests will skip" >&2
