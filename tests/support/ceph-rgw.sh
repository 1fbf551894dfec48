#!/usr/bin/env bash
# A real S3-compatible server for the tests: a one-node Ceph cluster (one monitor, one storage
# daemon keeping objects in RAM, auth off, loopback only) with the RADOS Gateway in front.
#   CEPH_DIR=/tmp/x RGW_PORT=7480 MON_PORT=3300 MON_V1_PORT=6789 bash ceph-rgw.sh start|stop
# Every port is a variable so that several test runs on one machine do not collide.
set -euo pipefail
D=${CEPH_DIR:?CEPH_DIR must name a scratch directory}
PORT=${RGW_PORT:-7480}
MON_V2=${MON_PORT:-3300}
MON_V1=${MON_V1_PORT:-6789}
AK=${S3_ACCESS:-testaccess}
SK=${S3_SECRET:-testsecret}
MEM_BYTES=${CEPH_MEMSTORE_BYTES:-4294967296}
C="$D/ceph.conf"
MON_ADDR="[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]"

wait_for() {  # wait_for SECONDS COMMAND...: retry COMMAND once a second
  local tries=$1; shift
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "timed out waiting for: $*" >&2
  return 1
}

write_conf() {
  cat >"$C" <<EOF
[global]
fsid = $1
mon host = $MON_ADDR
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
keyring = $D/keyring
run dir = $D/run
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
# the monitor stops when its disk is nearly full; a CI machine's disk may be fuller than a laptop's
mon data avail warn = 2
mon data avail crit = 1
ms bind ipv6 = false
[mon.a]
mon data = $D/mon.a
[osd.0]
osd data = $D/osd.0
osd objectstore = memstore
memstore device bytes = $MEM_BYTES
osd memory target = 939524096
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $D/rgw.a
rgw dns name = localhost
# a deleted object's space comes back after seconds, not hours: the store lives in RAM
rgw gc obj min wait = 5
rgw gc processor period = 5
# radosgw defaults ms_mon_client_mode to "secure", impossible with auth none
ms mon client mode = crc secure
EOF
}

start() {
  rm -rf "$D"; mkdir -p "$D"/{run,log,mon.a,osd.0,rgw.a}
  local fsid; fsid=$(uuidgen)
  write_conf "$fsid"
  ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$D/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "$MON_ADDR" "$D/monmap" >/dev/null
  ceph-mon -c "$C" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
  ceph-mon -c "$C" -i a
  local uuid; uuid=$(uuidgen)
  local id; id=$(ceph -c "$C" --connect-timeout 30 osd new "$uuid")
  ceph-osd -c "$C" -i "$id" --mkfs --osd-uuid "$uuid" 2>>"$D/log/osd-mkfs.log"
  ceph-osd -c "$C" -i "$id"
  wait_for 60 bash -c "ceph -c '$C' osd stat | grep -q '1 up'"
  radosgw -c "$C" -n client.rgw.a
  wait_for 90 curl -s -o /dev/null "http://127.0.0.1:$PORT/"
  radosgw-admin -c "$C" user create --uid=test --display-name=test \
    --access-key="$AK" --secret-key="$SK" >/dev/null
  echo "S3 up at http://127.0.0.1:$PORT"
}

stop() {
  local name pidfile pid
  for name in client.rgw.a osd.0 mon.a; do
    pidfile="$D/run/$name.pid"; [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$D"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
