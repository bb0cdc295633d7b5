#!/usr/bin/env bash
# Start a real single-node Slurm (munge + slurmctld + slurmd) for the e2e tests, as in /work/shared/RECIPES.md.
# Idempotent: when `sinfo` already answers, it does nothing. Must run as root.
# Waits until the node is idle, so the first sbatch of a test is scheduled at once.
set -euo pipefail

log() { printf 'start-slurm: %s\n' "$*" >&2; }

if sinfo -h -o %T >/dev/null 2>&1; then
  log "sinfo answers; Slurm is already up"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  log "must run as root"
  exit 1
fi

if ! command -v slurmctld >/dev/null 2>&1 && [[ ! -x /usr/sbin/slurmctld ]]; then
  log "installing slurm packages"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
fi

mkdir -p /run/munge /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
chown munge:munge /run/munge

# A pid file whose process is alive means the daemon is already there (a half-started earlier attempt).
alive() {
  local f=$1
  [[ -s $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating a munge key"
    if command -v mungekey >/dev/null 2>&1; then
      mungekey --create --keyfile=/etc/munge/munge.key
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

cat > /etc/slurm/slurm.conf <<'EOF'
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
NodeName=localhost CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

if ! alive /run/slurmctld.pid; then
  log "starting slurmctld"
  # -i: ignore (and discard) state left by an earlier controller
  /usr/sbin/slurmctld -i
fi
if ! alive /run/slurmd.pid; then
  log "starting slurmd"
  # -N: this machine's hostname is not "localhost", which is the NodeName in slurm.conf
  /usr/sbin/slurmd -N localhost
fi

for _ in $(seq 300); do
  if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
    log "node idle; Slurm is up"
    exit 0
  fi
  sleep 0.2
done
log "Slurm did not become idle within 60 s; see /var/log/slurm/"
sinfo 2>&1 | sed 's/^/start-slurm: /' >&2 || true
exit 1
