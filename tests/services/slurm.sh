#!/usr/bin/env bash
# A single-node Slurm cluster on 127.0.0.1 for the tests and benchmarks (Debian slurm-wlm + munge).
#
#   tests/services/slurm.sh start STATE_DIR    start munged, slurmctld and slurmd; wait until the node is idle
#   tests/services/slurm.sh stop STATE_DIR     stop what start started (by the pids it recorded)
#   tests/services/slurm.sh env STATE_DIR      print the environment the clients need (SLURM_CONF=...)
#
# The node has every core and a fake GPU (gres gpu:fake:1 on /dev/null), so GPU batch slots
# (--gres=gpu:1) are scheduled as on a real GPU node. Needs root (the daemons switch users).
# Slurm's configuration, state and logs live in STATE_DIR (the daemons run as root);
# nothing under /etc is changed except munge's key, made once when missing.
set -euo pipefail

cmd=${1:?usage: slurm.sh start|stop|env STATE_DIR}
state=$(mkdir -p "${2:?usage: slurm.sh start|stop|env STATE_DIR}" && cd "$2" && pwd)
conf="$state/slurm.conf"
munge_pid=/run/munge/heirloom-munged.pid

say() { echo "slurm.sh: $*" >&2; }

write_config() {
    local cpus mem
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    mkdir -p "$state/spool" "$state/ctld" "$state/log"
    cat > "$conf" <<CONF
ClusterName=heirloom-test
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${HEIRLOOM_SLURMCTLD_PORT:-16817}
SlurmdPort=${HEIRLOOM_SLURMD_PORT:-16818}
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:fake:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    echo "Name=gpu Type=fake File=/dev/null" > "$state/gres.conf"
    rm -f "$state/cgroup.conf"
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        say "making a munge key"
        mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge && chown munge:munge /run/munge
    if munge -n >/dev/null 2>&1 </dev/null; then
        return                                   # a munged already answers
    fi
    # munged runs as user munge: its files go where that user may write
    su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=$munge_pid --log-file=/run/munge/heirloom-munged.log"
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && return; sleep 0.1; done
    say "munged did not start (see /run/munge/heirloom-munged.log)"; exit 1
}

wait_idle() {
    for _ in $(seq 300); do
        state_now=$(SLURM_CONF=$conf sinfo -h -N -o %t 2>/dev/null | head -1)
        case "$state_now" in idle|mix|alloc) say "node ready ($state_now)"; return;; esac
        sleep 0.1
    done
    say "the node did not come up (state '${state_now:-none}'); logs in $state/log"; tail -n 5 "$state/log/slurmctld.log" "$state/log/slurmd.log" >&2; exit 1
}

case "$cmd" in
    start)
        command -v slurmctld >/dev/null || { say "slurm-wlm is not installed (apt-get install slurm-wlm munge)"; exit 1; }
        write_config
        start_munge
        SLURM_CONF=$conf /usr/sbin/slurmctld -f "$conf" -i || { say "slurmctld did not start"; tail -n 5 "$state/log/slurmctld.log" >&2; exit 1; }
        SLURM_CONF=$conf /usr/sbin/slurmd -f "$conf" || { say "slurmd did not start"; tail -n 5 "$state/log/slurmd.log" >&2; exit 1; }
        wait_idle
        ;;
    stop)
        for daemon in slurmd slurmctld; do
            if [ -s "$state/$daemon.pid" ]; then kill "$(cat "$state/$daemon.pid")" 2>/dev/null || true; fi
        done
        if [ -s "$munge_pid" ]; then kill "$(cat "$munge_pid")" 2>/dev/null || true; fi
        for _ in $(seq 100); do
            alive=0
            for f in "$state/slurmd.pid" "$state/slurmctld.pid" "$munge_pid"; do
                [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1
            done
            [ $alive = 0 ] && break
            sleep 0.1
        done
        ;;
    env)
        echo "SLURM_CONF=$conf"
        ;;
    *) say "unknown command $cmd"; exit 2;;
esac
