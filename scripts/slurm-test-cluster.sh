#!/usr/bin/env bash
# A single-node Slurm cluster in a temporary directory, for the integration test
# (tests/slurm_cluster.rs) and for trying sweeps by hand.
#   scripts/slurm-test-cluster.sh start DIR   # prints `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm-test-cluster.sh stop DIR
# Needs the Debian packages slurmctld, slurmd, slurm-client and munge (scripts/test.sh installs
# them) and root (slurmd runs jobs as their owner).
set -euo pipefail
action=${1:?usage: $0 start|stop DIR}
dir=$(realpath -m "${2:?usage: $0 start|stop DIR}")

stop() {
  for daemon in slurmd slurmctld; do
    if [[ -f "$dir/$daemon.pid" ]]; then
      kill "$(cat "$dir/$daemon.pid")" 2>/dev/null || true
    fi
  done
  sleep 1
  if [[ -f "$dir/munged.pid" ]]; then
    kill "$(cat "$dir/munged.pid")" 2>/dev/null || true
  fi
}

if [[ "$action" == stop ]]; then
  stop
  exit 0
fi
[[ "$action" == start ]] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
for cmd in munged slurmctld slurmd sbatch; do
  command -v "$cmd" >/dev/null || [[ -x "/usr/sbin/$cmd" ]] || {
    echo "error: $cmd is missing: apt-get install slurmctld slurmd slurm-client munge" >&2; exit 2; }
done
export PATH="/usr/sbin:$PATH"
mkdir -p "$dir"/{state,spool,munge,log}
chmod 755 "$dir"
host=$(hostname -s)
cpus=$(nproc)

# munge: its own socket and key in DIR, run as the munge user.
if [[ ! -f /etc/munge/munge.key ]]; then
  mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
fi
chown munge:munge "$dir/munge"
chmod 711 "$dir/munge"
runuser -u munge -- munged --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
cp "$dir/munge/munged.pid" "$dir/munged.pid"

cat > "$dir/slurm.conf" <<EOF
ClusterName=ssal-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ReturnToService=2
MaxArraySize=1001
KillWait=10
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=1000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
# A stand-in GPU (Slurm drops gpu entries without a File): lets --gres=gpu:1 be scheduled.
echo "NodeName=$host Name=gpu Count=1 File=/dev/null" > "$dir/gres.conf"
export SLURM_CONF="$dir/slurm.conf"
slurmctld -i -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 1 60); do
  if sinfo -h -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "error: the test cluster did not come up; logs in $dir/log" >&2
sinfo >&2 || true
tail -n 20 "$dir/log/"*.log >&2 || true
stop
exit 1
