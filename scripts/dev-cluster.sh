#!/usr/bin/env bash
# A local cluster for development and CI, one command each way:
#
#   bash scripts/dev-cluster.sh slurm up     # Debian's Slurm: slurmctld, two emulated nodes, munge,
#                                            # slurmrestd with JWT; prints the export lines to use it
#   bash scripts/dev-cluster.sh slurm down   # stops what `slurm up` started
#   bash scripts/dev-cluster.sh slurm env    # prints the export lines again
#   bash scripts/dev-cluster.sh slurm rest-stop|rest-start   # slurmrestd alone (fault tests)
#   bash scripts/dev-cluster.sh ray up       # a Ray head node (PyPI's ray in a virtual environment)
#   bash scripts/dev-cluster.sh ray down     # stops it
#   bash scripts/dev-cluster.sh ray env
#   bash scripts/dev-cluster.sh postgres up  # a throw-away PostgreSQL cluster (Debian's server) on
#                                            # 127.0.0.1:5433; prints the KILN_DATABASE to use
#   bash scripts/dev-cluster.sh postgres down|env
#   bash scripts/dev-cluster.sh postgres stop|start   # the server alone, its data kept (fault tests)
#   bash scripts/dev-cluster.sh s3 up        # an S3-protocol server (PyPI's moto) on 127.0.0.1:5001;
#                                            # prints the AWS_* settings Kiln passes to object_store
#   bash scripts/dev-cluster.sh s3 down|env
#
# Installs what it needs when it is missing: Debian's Slurm packages (as root), Ray into
# $KILN_CLUSTER_DIR/ray-venv. State, logs and the JWT
# key live in $KILN_CLUSTER_DIR (default /tmp/kiln-dev-cluster). The two nodes, n1 and n2, run on
# this machine (one `slurmd -N` each) declaring 64 CPUs and 256000 MB each (whatever this machine has;
# Slurm schedules by the declared sizes), so placement across nodes is real while everything shares
# one file system. Slurm holds each job to the memory it asked for (task/cgroup), and a job of the
# `urgent` partition preempts (cancels) jobs of the default `debug` one, as a site's would.
set -euo pipefail

engine="${1:-}"
action="${2:-}"
state="${KILN_CLUSTER_DIR:-/tmp/kiln-dev-cluster}"
rest_port="${KILN_SLURM_PORT:-6820}"

usage() {
  echo "usage: $0 slurm up|down|env|rest-stop|rest-start, $0 ray up|down|env," \
    "$0 postgres up|down|env|stop|start, or $0 s3 up|down|env" >&2
  exit 2
}

ray_version="2.60.0"
ray_venv="${state}/ray-venv"
ray_dashboard="${KILN_RAY_DASHBOARD_PORT:-8265}"

ray_install() {
  if [ -x "${ray_venv}/bin/ray" ] && "${ray_venv}/bin/python" -c "import ray" 2> /dev/null; then
    return
  fi
  python3 -m venv "${ray_venv}"
  "${ray_venv}/bin/pip" install --quiet --disable-pip-version-check "ray[default]==${ray_version}"
}

ray_env() {
  echo "export KILN_EXECUTOR=ray"
  echo "export KILN_RAY_ADDRESS=http://127.0.0.1:${ray_dashboard}"
  echo "export KILN_RAY_PYTHON=${ray_venv}/bin/python"
}

# One head node declaring 64 CPUs and 256 GB (whatever this machine has; Ray places by the
# declared sizes). `--block` keeps it in the foreground, so `down` stops exactly what `up` started.
ray_up() {
  ray_install
  ray_down > /dev/null 2>&1 || true
  mkdir -p "${state}/ray"
  RAY_USAGE_STATS_ENABLED=0 setsid "${ray_venv}/bin/ray" start --head --block \
    --node-ip-address=127.0.0.1 --port="${KILN_RAY_PORT:-6380}" \
    --num-cpus=64 --memory=$((256 * 1000 * 1000 * 1000)) \
    --dashboard-host=127.0.0.1 --dashboard-port="${ray_dashboard}" \
    --temp-dir="${state}/ray/tmp" --disable-usage-stats \
    > "${state}/ray/head.log" 2>&1 < /dev/null &
  echo $! > "${state}/ray/head.pid"
  for _ in $(seq 1 120); do
    if curl -sf -o /dev/null "http://127.0.0.1:${ray_dashboard}/api/version" \
      && curl -s "http://127.0.0.1:${ray_dashboard}/api/v0/nodes" | grep -q ALIVE; then
      ray_env
      return
    fi
    sleep 0.5
  done
  echo "Ray did not come up; see ${state}/ray/head.log" >&2
  exit 1
}

ray_down() {
  if [ -f "${state}/ray/head.pid" ]; then
    local pid
    pid="$(cat "${state}/ray/head.pid")"
    # The head's session leader: its whole group goes (raylet, GCS, dashboard, workers).
    kill -TERM -- "-${pid}" 2> /dev/null || kill -TERM "${pid}" 2> /dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "${pid}" 2> /dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-${pid}" 2> /dev/null || true
    rm -f "${state}/ray/head.pid"
  fi
  echo "Ray stopped"
}

slurm_install() {
  if command -v slurmctld > /dev/null && command -v slurmrestd > /dev/null \
    && [ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/auth_jwt.so ]; then
    return
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge slurmrestd slurm-wlm-jwt-plugin > /dev/null
}

slurm_conf() {
  local host
  host="$(hostname -s)"
  cat <<CONF
ClusterName=kiln
SlurmctldHost=${host}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=${state}/slurm/jwt.key
SlurmUser=root
SlurmdUser=root
StateSaveLocation=${state}/slurm/state
SlurmdSpoolDir=${state}/slurm/spool/%n
SlurmctldPidFile=${state}/slurm/slurmctld.pid
SlurmdPidFile=${state}/slurm/slurmd-%n.pid
SlurmctldLogFile=${state}/slurm/log/slurmctld.log
SlurmdLogFile=${state}/slurm/log/slurmd-%n.log
TmpFS=${state}/slurm/tmpfs-%n
ProctrackType=proctrack/linuxproc
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
KillWait=5
SlurmctldPort=${KILN_SLURMCTLD_PORT:-6817}
NodeName=n1 NodeHostname=${host} NodeAddr=127.0.0.1 Port=17001 CPUs=64 RealMemory=256000 State=UNKNOWN
NodeName=n2 NodeHostname=${host} NodeAddr=127.0.0.1 Port=17002 CPUs=64 RealMemory=256000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2
CONF
}

slurm_env() {
  local token
  token="$(SLURM_CONF="${state}/slurm/slurm.conf" scontrol token username=root lifespan=86400 | sed 's/^SLURM_JWT=//')"
  echo "export SLURM_CONF=${state}/slurm/slurm.conf"
  echo "export KILN_EXECUTOR=slurm"
  echo "export KILN_SLURM_URL=http://127.0.0.1:${rest_port}"
  echo "export KILN_SLURM_USER=root"
  echo "export KILN_SLURM_TOKEN=${token}"
  echo "export KILN_SLURM_PARTITION=debug"
}

slurm_up() {
  slurm_install
  slurm_down > /dev/null 2>&1 || true
  mkdir -p "${state}/slurm"/{state,spool,log} "${state}/slurm/tmpfs-n1" "${state}/slurm/tmpfs-n2"
  slurm_conf > "${state}/slurm/slurm.conf"
  printf 'CgroupPlugin=cgroup/v1\nConstrainRAMSpace=yes\n' > "${state}/slurm/cgroup.conf"
  if [ ! -s "${state}/slurm/jwt.key" ]; then
    head -c 32 /dev/urandom > "${state}/slurm/jwt.key"
  fi
  chmod 600 "${state}/slurm/jwt.key"
  export SLURM_CONF="${state}/slurm/slurm.conf"
  install -d -o munge -g munge /run/munge /var/log/munge /var/lib/munge
  if ! pgrep -x munged > /dev/null; then
    runuser -u munge -- munged
  fi
  slurmctld -i
  slurmd -N n1
  slurmd -N n2
  slurm_rest_start
  for _ in $(seq 1 100); do
    if [ "$(sinfo -h -o '%t' -p debug | sort -u | tr -d '\n')" = "idle" ] \
      && curl -s -o /dev/null "http://127.0.0.1:${rest_port}/openapi/v3"; then
      slurm_env
      return
    fi
    sleep 0.2
  done
  echo "Slurm did not come up; see ${state}/slurm/log" >&2
  sinfo >&2 || true
  exit 1
}

# The REST daemon alone, so tests can take it away from a running cluster and give it back.
slurm_rest_start() {
  SLURM_JWT=daemon setsid slurmrestd -a rest_auth/jwt -u nobody -g nogroup \
    -s openapi/v0.0.38 "127.0.0.1:${rest_port}" >> "${state}/slurm/log/slurmrestd.log" 2>&1 < /dev/null &
  echo $! > "${state}/slurm/slurmrestd.pid"
  for _ in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:${rest_port}/openapi/v3" && return
    sleep 0.1
  done
}

slurm_rest_stop() {
  if [ -f "${state}/slurm/slurmrestd.pid" ]; then
    kill "$(cat "${state}/slurm/slurmrestd.pid")" 2> /dev/null || true
    rm -f "${state}/slurm/slurmrestd.pid"
  fi
}

slurm_down() {
  export SLURM_CONF="${state}/slurm/slurm.conf"
  slurm_rest_stop
  if [ -f "${SLURM_CONF}" ]; then
    scontrol shutdown 2> /dev/null || true
  fi
  for _ in $(seq 1 50); do
    if ! pgrep -f "slurmd -N n[12]" > /dev/null && ! pgrep -x slurmctld > /dev/null; then
      break
    fi
    sleep 0.2
  done
  # A node daemon that lost its controller may ignore SIGTERM.
  pkill -f "slurmd -N n[12]" 2> /dev/null || true
  sleep 0.5
  pkill -KILL -f "slurmd -N n[12]" 2> /dev/null || true
  echo "Slurm stopped"
}

pg_port="${KILN_POSTGRES_PORT:-5433}"
pg_dir="${state}/postgres"

pg_bin() {
  find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2> /dev/null | sort -V | tail -n 1
}

postgres_install() {
  if [ -x "$(pg_bin)/initdb" ]; then
    return
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql > /dev/null
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres account.
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

postgres_env() {
  echo "export KILN_DATABASE=postgres://kiln@127.0.0.1:${pg_port}/kiln"
}

postgres_start() {
  # Throw-away data: durability against power loss is not what the tests exercise (fsync off);
  # every server of a test run connects at once (max_connections).
  pg_as_owner "$(pg_bin)/pg_ctl" -D "${pg_dir}/data" -l "${pg_dir}/server.log" -w -t 60 \
    -o "-p ${pg_port} -k ${pg_dir} -c listen_addresses=127.0.0.1 -c max_connections=500 -c fsync=off -c full_page_writes=off" \
    start > /dev/null
}

postgres_stop() {
  if [ -f "${pg_dir}/data/postmaster.pid" ]; then
    pg_as_owner "$(pg_bin)/pg_ctl" -D "${pg_dir}/data" -m fast -w stop > /dev/null || true
  fi
}

# A fresh cluster in ${pg_dir}: one role `kiln` trusted on loopback, one database `kiln`.
postgres_up() {
  postgres_install
  postgres_down > /dev/null 2>&1 || true
  rm -rf "${pg_dir}"
  mkdir -p "${pg_dir}"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "${pg_dir}"
  fi
  pg_as_owner "$(pg_bin)/initdb" -D "${pg_dir}/data" -U kiln --auth=trust -E UTF8 \
    > "${pg_dir}/initdb.log" 2>&1
  postgres_start
  pg_as_owner "$(pg_bin)/createdb" -h 127.0.0.1 -p "${pg_port}" -U kiln kiln
  postgres_env
}

postgres_down() {
  postgres_stop
  echo "PostgreSQL stopped"
}

moto_version="5.2.6"
moto_venv="${state}/moto-venv"
s3_port="${KILN_S3_PORT:-5001}"

s3_env() {
  echo "export AWS_ENDPOINT_URL=http://127.0.0.1:${s3_port} AWS_ALLOW_HTTP=true AWS_REGION=us-east-1"
  echo "export AWS_ACCESS_KEY_ID=kiln AWS_SECRET_ACCESS_KEY=kiln-dev-secret"
  echo "export KILN_S3_PYTHON=${moto_venv}/bin/python"
}

# moto's server mode: every bucket in memory, gone when it stops.
s3_up() {
  if ! "${moto_venv}/bin/python" -c "import moto, boto3" 2> /dev/null; then
    python3 -m venv "${moto_venv}"
    "${moto_venv}/bin/pip" install --quiet --disable-pip-version-check "moto[server]==${moto_version}"
  fi
  s3_down > /dev/null 2>&1 || true
  mkdir -p "${state}/s3"
  setsid "${moto_venv}/bin/moto_server" -H 127.0.0.1 -p "${s3_port}" \
    > "${state}/s3/moto.log" 2>&1 < /dev/null &
  echo $! > "${state}/s3/moto.pid"
  for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "http://127.0.0.1:${s3_port}/"; then
      s3_env
      return
    fi
    sleep 0.2
  done
  echo "moto did not come up; see ${state}/s3/moto.log" >&2
  exit 1
}

s3_down() {
  if [ -f "${state}/s3/moto.pid" ]; then
    kill -TERM -- "-$(cat "${state}/s3/moto.pid")" 2> /dev/null || true
    rm -f "${state}/s3/moto.pid"
  fi
  echo "moto stopped"
}

case "${engine} ${action}" in
  "slurm up") slurm_up ;;
  "slurm down") slurm_down ;;
  "slurm env") slurm_env ;;
  "slurm rest-stop") slurm_rest_stop ;;
  "slurm rest-start") slurm_rest_start ;;
  "ray up") ray_up ;;
  "ray down") ray_down ;;
  "ray env") ray_env ;;
  "postgres up") postgres_up ;;
  "postgres down") postgres_down ;;
  "postgres env") postgres_env ;;
  "postgres stop") postgres_stop ;;
  "postgres start") postgres_start ;;
  "s3 up") s3_up ;;
  "s3 down") s3_down ;;
  "s3 env") s3_env ;;
  *) usage ;;
esac
