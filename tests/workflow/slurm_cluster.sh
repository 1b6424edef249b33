#!/bin/bash
# A single-node Slurm cluster on localhost for the workflow tests: its own munged (socket
# and key under DIR), slurmctld and slurmd with 2 CPUs, every file under DIR, no
# accounting, no cgroups. Needs root (slurmd runs jobs as their user) and Debian's
# slurm-wlm and munge (scripts/install-deps.sh --test).
#   slurm_cluster.sh start DIR    prints "export SLURM_CONF=DIR/slurm.conf" once the node is idle
#   slurm_cluster.sh stop DIR     stops the three daemons started by start (by their PID files)
set -euo pipefail
cmd=${1:?start|stop} dir=${2:?DIR}
mkdir -p "$dir"
dir=$(readlink -f "$dir")

# Each daemon takes about 2 s to stop: slurmd and slurmctld stop side by side, then munged
# (which they may still talk to on their way out).
stop() {
  local group pids p pid
  for group in "slurmd slurmctld" munged; do
    pids=()
    for p in $group; do
      if [[ -f $dir/$p.pid ]]; then
        pid=$(cat "$dir/$p.pid")
        kill "$pid" 2>/dev/null || true
        pids+=("$pid")
        rm -f "$dir/$p.pid"
      fi
    done
    for pid in "${pids[@]}"; do
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    done
  done
}

if [[ $cmd == stop ]]; then
  stop
  exit 0
fi
[[ $cmd == start ]] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
stop # a cluster left by an earlier run in DIR

host=$(hostname -s)
# ports of our own (the defaults may be taken): from the PID, in 20000-29999
base=$((20000 + ($$ % 5000) * 2))
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
cat > "$dir/slurm.conf" <<CONF
ClusterName=vnptest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
# a job starts as soon as a CPU is free (the default batch_sched_delay, 3 s, left ~2.5 s
# between one job's end and the next one's start)
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 RealMemory=4096 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
# munged with its own key and socket (the system's, if any, is left alone)
munged --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munge/munged.log" \
  --seed-file="$dir/munge/munged.seed" --force
export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
echo "slurm_cluster.sh: the node did not come up; logs in $dir:" >&2
tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" "$dir/munge/munged.log" >&2 || true
sinfo >&2 || true
stop
exit 1
