#!/usr/bin/env bash
# A throw-away single-node SLURM cluster for tests and for trying profiles/slurm by hand.
#
#   .ci/slurm.sh start  STATEDIR   install (if missing), configure and start; prints SLURM_CONF
#   .ci/slurm.sh status STATEDIR   sinfo/squeue of that cluster; exit 1 if it is not up
#   .ci/slurm.sh stop   STATEDIR   stop exactly the daemons `start` started (by pid)
#   .ci/slurm.sh env    STATEDIR   print `export SLURM_CONF=...` (optional, see below)
#
# Root only (apt-get, munge). Debian 12 packages: slurmctld slurmd slurm-client munge (22.05).
# The node has (at least) 8 CPUs and 64 GB, one fake GPU (gres gpu:1 backed by /dev/null,
# so a job that asks for it gets CUDA_VISIBLE_DEVICES=0) and two partitions on the one node:
# `cpu` (default) and `gpu`. No accounting daemon: `sacct` does not work, so the Snakemake
# SLURM plugin must poll with squeue (`slurm-status-command: squeue` in the profile);
# MinJobAge keeps finished jobs visible to squeue long enough for that.
# Everything (config, state, spool, logs, pid files) lives under STATEDIR, except
#  - /etc/slurm/slurm.conf, a symlink to STATEDIR/etc/slurm.conf: the Snakemake job step
#    drops SLURM_* variables (SLURM_CONF too) before its inner `srun`, so clients inside a
#    job only find the default path. A real /etc/slurm/slurm.conf is never replaced.
#  - munge, which uses its system paths (/etc/munge/munge.key, /run/munge); a munged that
#    was already running is reused and left alone.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|status|env STATEDIR" >&2
  exit 2
}
[[ $# -eq 2 ]] || usage
cmd=$1
mkdir -p "$2"
S=$(cd "$2" && pwd)
export SLURM_CONF=$S/etc/slurm.conf

log() { echo "slurm.sh: $*" >&2; }

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
  local missing=()
  for pair in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_munge() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  if alive /run/munge/munged.pid && munge -n </dev/null >/dev/null 2>&1; then
    log "reusing running munged (pid $(cat /run/munge/munged.pid)); it will not be stopped"
    return 0
  fi
  runuser -u munge -- munged --force
  for _ in $(seq 50); do
    munge -n </dev/null >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n </dev/null | unmunge >/dev/null
  cp /run/munge/munged.pid "$S/run/munged.pid" # ours: stop kills it
}

write_config() {
  local host cpus mem_mb
  host=$(hostname -s)
  # The node claims at least 8 CPUs and 64 GB (SlurmdParameters=config_overrides), so that
  # jobs sized for a real cluster (embed: 8 CPUs, 32 GB) are scheduled here too and share
  # the real cores; memory is a scheduling consumable only (no cgroups enforce it).
  cpus=$(nproc)
  ((cpus < 8)) && cpus=8
  mem_mb=$(awk '/MemTotal/ {m = int($2 / 1024); print int(m * 0.9) - 1024}' /proc/meminfo)
  ((mem_mb < 64000)) && mem_mb=64000
  mkdir -p "$S"/{etc,state,spool,log,run}
  if [[ -e /etc/slurm/slurm.conf && ! -L /etc/slurm/slurm.conf ]]; then
    log "/etc/slurm/slurm.conf exists and is not ours; not touching a real SLURM setup"
    exit 1
  fi
  cat >"$S/etc/slurm.conf" <<EOF
# written by .ci/slurm.sh; single node, no accounting
ClusterName=artprobe-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
GresTypes=gpu
ReturnToService=2
SlurmdParameters=config_overrides
# finished jobs stay in squeue/scontrol for MinJobAge s: must exceed 3x the plugin's
# slurm-init-seconds-before-status-checks (squeue is its only status source here);
# an hour, so tests can inspect every job of a run afterwards
MinJobAge=3600
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# every job step appends "job step CUDA_VISIBLE_DEVICES" to log/tasks.log (tests read it)
TaskProlog=$S/etc/task_prolog.sh
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
  cat >"$S/etc/gres.conf" <<EOF
AutoDetect=off
NodeName=$host Name=gpu File=/dev/null
EOF
  # no cgroup plugins are configured; an explicit file keeps slurmd from probing cgroup v1/v2
  cat >"$S/etc/cgroup.conf" <<EOF
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
  cat >"$S/etc/task_prolog.sh" <<EOF
#!/bin/sh
echo "\$SLURM_JOB_ID \${SLURM_STEP_ID:-batch} \${CUDA_VISIBLE_DEVICES:-none}" >>"$S/log/tasks.log"
EOF
  chmod +x "$S/etc/task_prolog.sh"
  mkdir -p /etc/slurm
  ln -sfn "$S/etc/slurm.conf" /etc/slurm/slurm.conf
}

wait_idle() {
  local state=""
  for _ in $(seq 120); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
    case $state in
      idle | mixed | allocated) return 0 ;;
    esac
    sleep 0.5
  done
  log "node not idle after 60 s (state: '${state:-none}'); logs in $S/log"
  tail -n 20 "$S/log/slurmctld.log" "$S/log/slurmd.log" >&2 || true
  return 1
}

start() {
  [[ $(id -u) -eq 0 ]] || {
    log "must run as root"
    exit 1
  }
  if alive "$S/run/slurmctld.pid" && alive "$S/run/slurmd.pid"; then
    log "already running"
    echo "export SLURM_CONF=$SLURM_CONF"
    return 0
  fi
  install_packages
  local port
  for port in 6817 6818; do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
      log "port $port is in use (a cluster from another STATEDIR? see /etc/slurm/slurm.conf)"
      exit 1
    fi
  done
  write_config
  start_munge
  # -c: clean start (no saved jobs/nodes state from an earlier run in this STATEDIR)
  slurmctld -c
  for _ in $(seq 50); do
    scontrol ping >/dev/null 2>&1 && break
    sleep 0.2
  done
  slurmd
  wait_idle
  echo "export SLURM_CONF=$SLURM_CONF"
}

stop_pid() {
  local name=$1 pidfile=$2 pid
  alive "$pidfile" || {
    rm -f "$pidfile"
    return 0
  }
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) did not exit on TERM; sending KILL"
    kill -9 "$pid" || true
  fi
  rm -f "$pidfile"
}

stop() {
  # cancel what is still queued or running (a private test cluster), then slurmd, the
  # controller, and munge if it is ours
  if alive "$S/run/slurmctld.pid"; then
    squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
    for _ in $(seq 50); do
      [[ -z $(squeue -h -t PD,R,CG -o %i 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
  stop_pid slurmd "$S/run/slurmd.pid"
  stop_pid slurmctld "$S/run/slurmctld.pid"
  stop_pid munged "$S/run/munged.pid"
  if [[ $(readlink /etc/slurm/slurm.conf 2>/dev/null) == "$S/etc/slurm.conf" ]]; then
    rm -f /etc/slurm/slurm.conf
  fi
}

status() {
  if ! alive "$S/run/slurmctld.pid" || ! alive "$S/run/slurmd.pid"; then
    log "not running ($S)"
    return 1
  fi
  sinfo
  squeue
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) usage ;;
esac
