#!/usr/bin/env bash
# An XRootD server on 127.0.0.1 for the tests and benchmarks (Debian xrootd-server).
#
#   tests/services/xrootd.sh start STATE_DIR [PORT]   start xrootd (as user daemon) on PORT (default 11094)
#   tests/services/xrootd.sh stop STATE_DIR           stop it (by the pid it recorded)
#   tests/services/xrootd.sh env STATE_DIR            print what clients need: the server's root:// URL
#                                                     and the folder it exports
#
# The server exports STATE_DIR/data (writable, no authentication: loopback only) and
# answers adler32 checksum queries, as EOS and dCache do. Needs root (xrootd -R daemon).
set -euo pipefail

cmd=${1:?usage: xrootd.sh start|stop|env STATE_DIR [PORT]}
state=$(mkdir -p "${2:?usage: xrootd.sh start|stop|env STATE_DIR [PORT]}" && cd "$2" && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
say() { echo "xrootd.sh: $*" >&2; }

start() {
    local port=${1:-11094}
    command -v xrootd >/dev/null || { say "xrootd is not installed (apt-get install xrootd-server)"; exit 1; }
    mkdir -p "$state/data" "$state/admin"
    cat > "$state/xrootd.cfg" <<CONF
xrd.port $port
xrd.network nodnr
xrd.allow host localhost
all.export /
oss.localroot $state/data
all.adminpath $state/admin
all.pidpath $state/admin
xrootd.chksum adler32
CONF
    chown -R daemon "$state/data" "$state/admin"
    echo "$port" > "$state/port"
    xrootd -b -c "$state/xrootd.cfg" -l "$state/admin/xrootd.log" -R daemon -s "$state/admin/xrootd.pid" \
        >/dev/null 2>&1 || true    # the daemonising parent exits 1 even when the server starts
    if wait_for_port "$port"; then
        say "serving $state/data on root://127.0.0.1:$port/"
        return 0
    fi
    say "xrootd did not start; its log:"; tail -20 "$state"/admin/xrootd.log* >&2 || true
    exit 1
}

case "$cmd" in
    start) start "${3:-}" ;;
    stop) stop_pid "$state/admin/xrootd.pid" ;;
    env) echo "HEIRLOOM_XROOTD_URL=root://127.0.0.1:$(cat "$state/port")/"; echo "HEIRLOOM_XROOTD_DATA=$state/data" ;;
    *) say "unknown command $cmd"; exit 2 ;;
esac
