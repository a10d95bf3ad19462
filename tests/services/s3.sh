#!/usr/bin/env bash
# An S3 server on 127.0.0.1 for the tests and benchmarks: moto's standalone server, from
# .venv-services (requirements-services.lock; ./setup.sh test makes it).
#
#   tests/services/s3.sh start STATE_DIR [PORT]   start the server on PORT (default 15555)
#   tests/services/s3.sh stop STATE_DIR           stop it (by the pid it recorded)
#   tests/services/s3.sh env STATE_DIR            print what S3 clients need (AWS_ENDPOINT_URL, keys)
#
# The server keeps its buckets in memory; it speaks the S3 protocol over HTTP, conditional
# puts (If-None-Match: *) included.
set -euo pipefail

cmd=${1:?usage: s3.sh start|stop|env STATE_DIR [PORT]}
state=$(mkdir -p "${2:?usage: s3.sh start|stop|env STATE_DIR [PORT]}" && cd "$2" && pwd)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
server=${HEIRLOOM_MOTO_SERVER:-$root/.venv-services/bin/moto_server}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
say() { echo "s3.sh: $*" >&2; }

start() {
    local port=${1:-15555}
    [ -x "$server" ] || { say "$server is missing: ./setup.sh test makes .venv-services"; exit 1; }
    echo "$port" > "$state/port"
    "$server" -H 127.0.0.1 -p "$port" > "$state/moto.log" 2>&1 &
    echo $! > "$state/moto.pid"
    if wait_for_port "$port" "$state/moto.pid"; then
        say "S3 server on http://127.0.0.1:$port"
        return 0
    fi
    say "the S3 server did not start; its log:"; tail -20 "$state/moto.log" >&2 || true
    exit 1
}

case "$cmd" in
    start) start "${3:-}" ;;
    stop) stop_pid "$state/moto.pid" ;;
    env)
        echo "AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$state/port")"
        echo "AWS_ACCESS_KEY_ID=heirloom-test"
        echo "AWS_SECRET_ACCESS_KEY=heirloom-test"
        echo "AWS_DEFAULT_REGION=us-east-1"
        echo "HEIRLOOM_S3_LOG=$state/moto.log"    # one line per request the server answered
        ;;
    *) say "unknown command $cmd"; exit 2 ;;
esac
