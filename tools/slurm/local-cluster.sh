#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for ditflow's Slurm tests (tests/slurm/).
#
#   bash tools/slurm/local-cluster.sh up       install what is missing (munge, slurmctld, slurmd,
#                                              slurm-client from Debian), write /etc/slurm/slurm.conf,
#                                              start munged, slurmctld, slurmd; wait until the node is idle
#   bash tools/slurm/local-cluster.sh down     stop the daemons (by the pids in their pid files)
#   bash tools/slurm/local-cluster.sh status   say whether the daemons run and print `sinfo`
#
# Idempotent: `up` on a running cluster only checks it. Needs root and no systemd (the daemons are started
# directly). The node declares the machine's CPU count and most of its memory; there is no GPU (jobs that ask
# for one stay pending, so tests check GPU requests in the generated script instead). Accounting is off:
# no slurmdbd, `sacct` does not work (ditflow does not need it).
set -euo pipefail

CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)

log() { echo "local-cluster: $*" >&2; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# munged answers (a credential can be encoded).
munge_ok() { command -v munge >/dev/null && munge -n </dev/null >/dev/null 2>&1; }

install_packages() {
  local missing=()
  command -v munged >/dev/null || missing+=(munge)
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Other apt users on the machine: wait for the dpkg lock instead of failing.
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

write_conf() {
  local cpus mem
  cpus=$(nproc)
  # RealMemory in MiB: never more than exists (slurmd drains a node that declares more).
  mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.8 }' /proc/meminfo)
  mkdir -p /etc/slurm
  local want
  want=$(cat <<CONF
# Written by ditflow's tools/slurm/local-cluster.sh: a one-node test cluster.
ClusterName=ditflow
SlurmctldHost=localhost
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmUser=root
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldLogFile=/var/log/slurmctld.log
SlurmdLogFile=/var/log/slurmd.log
MinJobAge=300
KillWait=5
OverTimeLimit=0
NodeName=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
)
  if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$want" ]; then
    echo "$want" >"$CONF"
    return 0
  fi
  return 1
}

up() {
  [ "$(id -u)" = 0 ] || { log "needs root"; exit 1; }
  install_packages
  local changed=0
  write_conf && changed=1
  mkdir -p /run/munge /var/spool/slurmd /var/spool/slurmctld /var/log
  chown munge:munge /run/munge 2>/dev/null || true
  if ! munge_ok; then
    log "starting munged"
    if [ ! -s /etc/munge/munge.key ]; then
      mungekey --create 2>/dev/null || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
      chown munge:munge /etc/munge/munge.key 2>/dev/null || true
      chmod 400 /etc/munge/munge.key
    fi
    munged --force
    local j
    for j in $(seq 1 50); do munge_ok && break; sleep 0.1; done
    munge_ok || { log "munged does not answer"; exit 1; }
  fi
  if [ "$changed" = 1 ] && pid_alive /run/slurmctld.pid; then
    log "configuration changed: restarting the daemons"
    down_daemons
  fi
  if ! pid_alive /run/slurmctld.pid; then
    log "starting slurmctld"
    slurmctld
  fi
  if ! pid_alive /run/slurmd.pid; then
    log "starting slurmd"
    slurmd
  fi
  local i state=""
  for i in $(seq 1 60); do
    state=$(timeout 5 sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 || true)
    case "$state" in
      idle | mixed | allocated | completing) break ;;
      drain* | down*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
  done
  case "$state" in
    idle | mixed | allocated | completing) log "up: node $NODE is $state" ;;
    *)
      log "node $NODE did not become idle (state: ${state:-unknown}); see /var/log/slurmctld.log, /var/log/slurmd.log"
      exit 1
      ;;
  esac
}

# Stops the daemon whose pid is in file $1 and waits (up to 20 s, then SIGKILL) until that process is gone
# (the daemons remove their pid files before they have finished exiting).
stop_pidfile() {
  local f=$1 name=$2 i pid
  if pid_alive "$f"; then
    pid=$(cat "$f")
    log "stopping $name"
    kill "$pid"
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM for 20 s: SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

down_daemons() {
  stop_pidfile /run/slurmd.pid slurmd
  stop_pidfile /run/slurmctld.pid slurmctld
}

down() {
  down_daemons
  stop_pidfile /run/munge/munged.pid munged
}

status() {
  local ok=0
  pid_alive /run/slurmctld.pid && echo "slurmctld: running (pid $(cat /run/slurmctld.pid))" || { echo "slurmctld: stopped"; ok=1; }
  pid_alive /run/slurmd.pid && echo "slurmd: running (pid $(cat /run/slurmd.pid))" || { echo "slurmd: stopped"; ok=1; }
  munge_ok && echo "munged: running" || { echo "munged: stopped"; ok=1; }
  if [ "$ok" = 0 ]; then timeout 10 sinfo || ok=1; fi
  return "$ok"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
