#!/usr/bin/env bash
# scripts/rgw.sh — a throwaway single-node Ceph RGW (S3) on 127.0.0.1:7480 for tests.
#
#   scripts/rgw.sh start   # idempotent; fast no-op when already up
#   scripts/rgw.sh stop    # kill the daemons, remove the state dir
#   scripts/rgw.sh env     # print export lines for the test suite
#   scripts/rgw.sh status  # exit 0 iff the bucket answers a signed HEAD
#
# Needs root (installs Debian's radosgw/ceph-mon/ceph-osd when missing).
# One mon, one memstore OSD, auth none, no mgr, no systemd. Everything lives
# under $HOARD_RGW_DIR (default /tmp/hoard-rgw) and binds to 127.0.0.1 only.
# Only short progress lines go to stderr; command output goes to
# $HOARD_RGW_DIR/log/*.log.
set -euo pipefail

DIR="${HOARD_RGW_DIR:-/tmp/hoard-rgw}"
HOST=127.0.0.1
PORT=7480
MON_PORT=6789
ENDPOINT="http://$HOST:$PORT"
ACCESS_KEY=hoardtest
SECRET_KEY=hoardtestsecret
REGION=us-east-1
BUCKET=hoard-test
CONF="$DIR/ceph.conf"
# Lock lives outside $DIR because `stop` removes $DIR.
LOCK="${DIR%/}.lock"

say() { printf 'rgw: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  if [ -d "$DIR/log" ]; then
    for f in "$DIR"/log/*.log; do
      [ -s "$f" ] || continue
      say "--- tail $f"
      tail -n 15 "$f" >&2 || true
    done
  fi
  exit 1
}

s3() { # s3 METHOD PATH [curl args...] -> prints HTTP status code
  local method=$1 path=$2
  shift 2
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "$method" \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@" "$ENDPOINT$path" 2>/dev/null || true
}

http_up() { # anything (even a 403/404) answering HTTP on the port
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ENDPOINT/" 2>/dev/null || true)
  [ -n "$code" ] && [ "$code" != 000 ]
}

bucket_ok() { [ "$(s3 HEAD "/$BUCKET" -I)" = 200 ]; }

alive() { # alive PID: running and not a zombie
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

pid_alive() { # pid_alive NAME
  local f="$DIR/run/$1.pid"
  [ -s "$f" ] && alive "$(cat "$f")"
}

ceph_() { timeout 30 ceph -c "$CONF" --connect-timeout 20 "$@"; }

# ---------------------------------------------------------------- install

apt_busy() { pgrep -x 'apt-get|apt|dpkg|aptitude|unattended-upgr' >/dev/null 2>&1; }

wait_for_apt() {
  # Another apt/dpkg run (e.g. a background install logging to
  # /tmp/apt-ceph.log, which ends with "EXIT <rc>") may hold the dpkg lock.
  # Wait until no apt/dpkg process has been seen for a few seconds.
  local waited=0 idle=0 said=0 need
  while [ $waited -lt 1200 ]; do
    need=3
    if [ -f /tmp/apt-ceph.log ] && ! grep -q '^EXIT' /tmp/apt-ceph.log 2>/dev/null; then
      need=10 # that script runs apt-get update then install: allow a gap
    fi
    if apt_busy; then idle=0; else idle=$((idle + 1)); fi
    [ $idle -ge $need ] && return 0
    if [ $said = 0 ] && [ $idle = 0 ]; then
      say "waiting for another apt/dpkg run to finish"
      said=1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "apt/dpkg still busy after ${waited}s; trying anyway (lock timeout 600s)"
}

have_bins() { command -v radosgw >/dev/null && command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null; }

pkgs_configured() { # all three packages fully installed (not mid-dpkg)
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}|' radosgw ceph-mon ceph-osd 2>/dev/null)" = 'ii |ii |ii |' ]
}

install_pkgs() {
  if have_bins && { pkgs_configured || ! apt_busy; }; then return 0; fi
  wait_for_apt
  have_bins && return 0
  [ "$(id -u)" = 0 ] || die "radosgw/ceph-mon/ceph-osd missing and not root"
  mkdir -p "$DIR/log"
  local log="$DIR/log/apt.log"
  local lockopt=(-o DPkg::Lock::Timeout=600)
  say "installing radosgw ceph-mon ceph-osd (apt, log: $log)"
  apt-get "${lockopt[@]}" update >>"$log" 2>&1 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get "${lockopt[@]}" install -y --no-install-recommends \
    radosgw ceph-mon ceph-osd >>"$log" 2>&1 || die "apt-get install failed"
  have_bins || die "packages installed but binaries still missing"
}

# ---------------------------------------------------------------- stop

stop_daemons() {
  local name pid pids=()
  for name in client.rgw.a osd.0 mon.a; do
    if [ -s "$DIR/run/$name.pid" ]; then
      pid=$(cat "$DIR/run/$name.pid")
      alive "$pid" && pids+=("$pid")
    fi
  done
  # Fallback for lost pid files: only processes started with *our* conf file.
  while read -r pid; do
    [ -n "$pid" ] && pids+=("$pid")
  done < <(pgrep -f -- "-c $CONF( |$)" 2>/dev/null || true)
  [ ${#pids[@]} -eq 0 ] && return 0
  # SIGKILL on purpose: the cluster is throwaway, memstore would otherwise dump
  # its whole content to disk on SIGTERM, and radosgw takes >5 s to exit on
  # SIGTERM once the mon/osd are gone.
  kill -9 "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do alive "$pid" && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.1
  done
}

cmd_stop() {
  if [ -d "$DIR" ]; then
    say "stopping daemons, removing $DIR"
    stop_daemons
    rm -rf "$DIR"
  fi
}

# ---------------------------------------------------------------- start

write_conf() {
  local fsid=$1
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = $HOST:$MON_PORT
mon initial members = a
public addr = $HOST
cluster addr = $HOST
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
log to stderr = false
err to stderr = false
crash dir = $DIR/crash

osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0

[mon]
mon data = $DIR/mon/\$cluster-\$id
# the default 1 s batching makes every pool creation by radosgw cost ~1 s
paxos propose interval = 0.01
paxos min wait = 0.001

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd crush update on start = false
osd class update on start = false

[client.rgw.a]
rgw data = $DIR/rgw
rgw frontends = beast endpoint=$HOST:$PORT
rgw dns name = localhost
rgw thread pool size = 64
# reclaim deleted objects quickly: memstore keeps everything in RAM
rgw gc obj min wait = 30
rgw gc processor period = 30
EOF
}

wait_until() { # wait_until SECONDS DESCRIPTION CMD...
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || die "timed out waiting for $what"
    sleep 0.3
  done
}

osd_up() { ceph_ osd dump 2>/dev/null | grep -q '^osd\.0 up'; }

bootstrap() {
  local t0=$SECONDS
  stop_daemons
  rm -rf "$DIR"
  mkdir -p "$DIR"/{run,log,mon,osd/ceph-0,rgw,crash}
  local blog="$DIR/log/bootstrap.log"
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"
  export CEPH_CONF="$CONF"

  say "bootstrapping mon (state: $DIR)"
  # auth is off, but some tools still insist on a keyring file existing.
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >>"$blog" 2>&1
  ceph-authtool "$DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
    --cap mds 'allow *' --cap mgr 'allow *' >>"$blog" 2>&1
  monmaptool --create --fsid "$fsid" --add a "$HOST:$MON_PORT" "$DIR/monmap" >>"$blog" 2>&1 ||
    die "monmaptool failed"
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" >>"$blog" 2>&1 ||
    die "ceph-mon --mkfs failed"
  ceph-mon -c "$CONF" -i a >>"$blog" 2>&1 9>&- || die "ceph-mon failed to start"
  wait_until 30 "mon" ceph_ mon stat >/dev/null

  say "bootstrapping osd (memstore)"
  local id
  id=$(ceph_ osd create 2>>"$blog") || die "ceph osd create failed"
  [ "$id" = 0 ] || die "unexpected osd id '$id'"
  ceph-osd -c "$CONF" -i 0 --mkfs >>"$blog" 2>&1 || die "ceph-osd --mkfs failed"
  ceph_ osd crush add osd.0 1.0 host=localhost root=default >>"$blog" 2>&1 ||
    die "crush add failed"
  ceph-osd -c "$CONF" -i 0 >>"$blog" 2>&1 9>&- || die "ceph-osd failed to start"
  wait_until 60 "osd.0 up" osd_up

  say "starting radosgw"
  radosgw -c "$CONF" -n client.rgw.a >>"$blog" 2>&1 9>&- || die "radosgw failed to start"
  wait_until 90 "radosgw on $ENDPOINT" http_up
  say "cluster up in $((SECONDS - t0))s"
}

ensure_user_and_bucket() {
  local blog="$DIR/log/bootstrap.log"
  mkdir -p "$DIR/log"
  if ! radosgw-admin -c "$CONF" user info --uid "$ACCESS_KEY" >>"$blog" 2>&1; then
    say "creating user $ACCESS_KEY"
    radosgw-admin -c "$CONF" user create --uid "$ACCESS_KEY" --display-name "hoard tests" \
      --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" >>"$blog" 2>&1 ||
      die "radosgw-admin user create failed"
  fi
  local code
  for _ in $(seq 40); do
    code=$(s3 PUT "/$BUCKET")
    case $code in
      200 | 409) break ;; # 409 BucketAlreadyOwnedByYou on some versions
    esac
    sleep 0.5
  done
  bucket_ok || die "bucket $BUCKET not reachable (last PUT status: ${code:-none})"
  say "ready: $ENDPOINT bucket $BUCKET"
}

cmd_start() {
  command -v curl >/dev/null || die "curl is required"
  # Fast path without the lock.
  if bucket_ok; then
    say "already running on $ENDPOINT"
    return 0
  fi
  exec 9>"$LOCK"
  flock 9 # serialise concurrent starts
  if bucket_ok; then
    say "already running on $ENDPOINT"
    return 0
  fi
  if pid_alive client.rgw.a && http_up; then
    ensure_user_and_bucket
    return 0
  fi
  if http_up && ! pid_alive client.rgw.a; then
    die "something else answers on $ENDPOINT without our bucket; not touching it"
  fi
  local t0=$SECONDS
  install_pkgs
  bootstrap
  ensure_user_and_bucket
  say "started in $((SECONDS - t0))s"
}

cmd_env() {
  cat <<EOF
export AWS_ENDPOINT_URL_S3=$ENDPOINT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=$REGION
export HOARD_TEST_S3_BUCKET=$BUCKET
EOF
}

case "${1:-}" in
  start) cmd_start ;;
  stop)
    exec 9>"$LOCK"
    flock 9
    cmd_stop
    ;;
  env) cmd_env ;;
  status) bucket_ok ;;
  *)
    echo "usage: $0 start|stop|env|status" >&2
    exit 2
    ;;
esac
