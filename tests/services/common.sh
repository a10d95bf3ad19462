# Shared by the service scripts (sourced): waiting for a port, stopping by a pid file.

# wait_for_port PORT PIDFILE: 0 once something listens on 127.0.0.1:PORT (at most 15 s),
# 1 when it does not or the process in PIDFILE (if given and written) has died
wait_for_port() {
    local port=$1 pidfile=${2:-}
    for _ in $(seq 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        if [ -n "$pidfile" ] && [ -s "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# stop_pid PIDFILE: TERM the process, KILL it after 5 s
stop_pid() {
    local pid
    pid=$(cat "$1" 2>/dev/null || true)
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}
