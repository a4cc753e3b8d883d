#!/usr/bin/env bash
# A single-node Slurm cluster on localhost for the `slurm`-marked tests.
#   .ci/slurm.sh install   apt-get install slurm-wlm + munge if sinfo/slurmctld/munged are missing
#   .ci/slurm.sh up        munge key, slurm.conf (this machine's CPUs and memory, one CPU-only
#                          partition "ci", no accounting), start munged, slurmctld, slurmd and
#                          record their PIDs; wait until `sinfo` shows the node idle
#   .ci/slurm.sh down      stop exactly the daemons `up` started (by their recorded PIDs)
# Everything lives under $SLURM_CI_DIR (default /tmp/lossbench-slurm); needs root.
set -euo pipefail
DIR=${SLURM_CI_DIR:-/tmp/lossbench-slurm}
CONF=/etc/slurm/slurm.conf

install() {
    if command -v sinfo >/dev/null && command -v slurmctld >/dev/null \
        && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
}

up() {
    mkdir -p "$DIR"/{munge,state,spool,log,run}
    chmod 700 "$DIR/munge"
    if [[ -e "$CONF" && ! -e "$DIR/slurm.conf.ours" ]] && ! grep -q "lossbench CI" "$CONF"; then
        echo "slurm.sh: $CONF exists and is not ours; refusing to overwrite it" >&2
        exit 2
    fi
    # munge: a fresh key, its own socket and pid file
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
    local sock=/run/munge/munge.socket.2
    mkdir -p /run/munge
    munged --force --key-file="$DIR/munge/munge.key" --socket="$sock" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed"
    local node cpus mem
    node=$(hostname -s)
    cpus=$(nproc)
    # RealMemory in MB, leaving 10% for the system (slurmd refuses a node with less than stated)
    mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p /etc/slurm
    cat > "$CONF" <<CONF
# lossbench CI: a single-node cluster on localhost (written by .ci/slurm.sh)
ClusterName=lossbench-ci
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job may start again after cred_expire seconds (default 120)
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=30
MinJobAge=30
MailProg=/bin/true
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=ci Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
    touch "$DIR/slurm.conf.ours"
    slurmctld -i
    slurmd
    # the daemons write their own pid files; wait for them and for an idle node
    local i
    for i in $(seq 60); do
        if [[ -s "$DIR/run/slurmctld.pid" && -s "$DIR/run/slurmd.pid" ]] \
            && sinfo -h -o %T 2>/dev/null | grep -qx idle; then
            echo "slurm.sh: cluster up: node $node, $cpus CPUs, ${mem} MB, partition ci"
            sinfo
            return 0
        fi
        sleep 1
    done
    echo "slurm.sh: the node did not become idle in 60 s; logs in $DIR/log" >&2
    tail -n 20 "$DIR"/log/*.log >&2 || true
    down
    exit 1
}

down() {
    local name pid
    for name in slurmd slurmctld munged; do
        [[ -s "$DIR/run/$name.pid" ]] || continue
        pid=$(cat "$DIR/run/$name.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        fi
        rm -f "$DIR/run/$name.pid"
    done
    if [[ -e "$DIR/slurm.conf.ours" ]]; then
        rm -f "$CONF" "$DIR/slurm.conf.ours"
    fi
    echo "slurm.sh: daemons stopped"
}

case "${1:-}" in
    install) install ;;
    up) up ;;
    down) down ;;
    *) echo "usage: $0 install|up|down" >&2; exit 2 ;;
esac
