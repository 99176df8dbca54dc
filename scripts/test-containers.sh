#!/usr/bin/env bash
# The containers, for real: builds the image (scripts/build-image.sh), runs three worker
# containers of the tally example and the demo client against a private RabbitMQ and Redis that
# it starts on free loopback ports (never the machine's own servers), checks that the image's
# HEALTHCHECK turns healthy, `docker stop`s one worker in the middle of a batch (SIGTERM: it
# drains and exits 0, and the batch loses nothing), and validates docker-compose.yml with
# `docker-compose config`.
#
# Installs docker.io, docker-compose and debootstrap from the system's packages when they are
# missing (as root) and starts dockerd if none runs, leaving it running (like the Docker
# executor's tests: another run may be using it, and it keeps the images). Where Docker cannot be
# installed or started it prints one line saying so and exits 0. Containers run with
# --network host. The containers and servers it starts are removed on exit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

image="agnext-broker:test-containers"
app="agnext_broker.examples.tally:register"
namespace="agnext"
drain_timeout=10
run_id="ct$$"
tmp="$(mktemp -d /tmp/agnext-containers.XXXXXX)"
chmod 755 "$tmp"
servers_pid=""
dockerd_pid=""
passed=0
started=$SECONDS

say() { echo "==> [$((SECONDS - started)) s] $*" >&2; }
ok() {
  passed=$((passed + 1))
  echo "==> [$((SECONDS - started)) s] ok: $*" >&2
}
fail() {
  echo "==> FAILED: $*" >&2
  exit 1
}

cleanup() {
  local status=$?
  set +e
  trap '' INT TERM # cleaning up is not to be cut short
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    local containers
    containers="$(docker ps -aq --filter "label=agnext-test-containers=$run_id")"
    if [ -n "$containers" ]; then
      if [ "$status" -ne 0 ]; then
        local c
        for c in $containers; do
          echo "--- logs of $(docker inspect -f '{{.Name}}' "$c") (last 30 lines) ---" >&2
          docker logs --tail 30 "$c" 2>&1 | sed 's/^/    /' >&2
        done
      fi
      # shellcheck disable=SC2086
      docker rm -f $containers >/dev/null 2>&1
    fi
  fi
  if [ -n "$servers_pid" ] && kill -0 "$servers_pid" 2>/dev/null; then
    kill -TERM "$servers_pid"
    wait "$servers_pid" 2>/dev/null
  fi
  [ "$status" -ne 0 ] && [ -f "$tmp/servers.log" ] && tail -n 20 "$tmp/servers.log" >&2
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# until SECONDS CMD...: run CMD until it succeeds, at most SECONDS; polls every 0.2 s.
until_ok() {
  local limit=$1
  shift
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# --- Docker: installed and running, or one line and exit 0 ------------------------------------

docker_skip() {
  echo "==> containers: skipped: $* (scripts/test-containers.sh needs a Docker engine)"
  trap - EXIT
  rm -rf "$tmp"
  exit 0
}

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1 ||
   ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    command -v dockerd >/dev/null 2>&1 || docker_skip "no dockerd, and no root with apt-get to install docker.io"
  elif ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
             docker.io docker-compose debootstrap; } >"$tmp/apt.log" 2>&1; then
    docker_skip "apt-get install docker.io docker-compose debootstrap failed ($(tail -n 1 "$tmp/apt.log"))"
  fi
fi
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || docker_skip "no Docker engine answers, and starting dockerd needs root"
  for attempt in "" "--iptables=false --storage-driver=vfs"; do
    # Where the kernel lacks what the defaults need (iptables, overlayfs), the second works.
    # shellcheck disable=SC2086
    setsid dockerd $attempt >>"/var/log/agnext-dockerd.log" 2>&1 </dev/null &
    dockerd_pid=$!
    deadline=$((SECONDS + 60))
    until docker info >/dev/null 2>&1; do
      if ! kill -0 "$dockerd_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then break; fi
      sleep 0.2
    done
    if docker info >/dev/null 2>&1; then
      break
    fi
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
    dockerd_pid=""
  done
  [ -n "$dockerd_pid" ] ||
    docker_skip "dockerd does not start here ($(tail -n 1 /var/log/agnext-dockerd.log))"
fi
say "Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null) is running$([ -n "$dockerd_pid" ] && echo " (dockerd started now, left running)"), storage driver $(docker info --format '{{.Driver}}' 2>/dev/null)"

# --- the image ---------------------------------------------------------------------------------

say "building $image"
bash scripts/build-image.sh "$image"
healthcheck="$(docker image inspect --format '{{json .Config.Healthcheck.Test}}' "$image")"
case "$healthcheck" in
  *"/healthz"*AGNEXT_HEALTH_PORT*) ok "the image has a HEALTHCHECK on /healthz at AGNEXT_HEALTH_PORT" ;;
  *) fail "the image's HEALTHCHECK is $healthcheck" ;;
esac
user="$(docker image inspect --format '{{.Config.User}}' "$image")"
case "${user%%:*}" in
  "" | 0 | root) fail "the image runs as user '$user'" ;;
esac
[ "$(docker run --rm --no-healthcheck "$image" --version)" != "" ] ||
  fail "agnext-broker --version printed nothing"
ok "the image runs as user $user and its entry point is agnext-broker"

# --- private servers ---------------------------------------------------------------------------

say "starting a private RabbitMQ and Redis on free loopback ports"
PYTHONPATH="$root" .venv/bin/python scripts/_containers.py servers "$tmp/servers.env" \
  >"$tmp/servers.log" 2>&1 &
servers_pid=$!
deadline=$((SECONDS + 120))
until [ -f "$tmp/servers.env" ]; do
  kill -0 "$servers_pid" 2>/dev/null || fail "the private servers did not start"
  [ "$SECONDS" -lt "$deadline" ] || fail "the private servers did not start in 120 s"
  sleep 0.2
done
# shellcheck disable=SC1091
source "$tmp/servers.env"
# shellcheck disable=SC2153 # HEALTH_PORTS comes from servers.env
read -r -a health_ports <<<"$HEALTH_PORTS"
export AGNEXT_AMQP_URL="$AMQP_URL" AGNEXT_REDIS_URL="$REDIS_URL"
say "RabbitMQ at ${AMQP_URL/guest:guest@/}, Redis at $REDIS_URL"
helper() { PYTHONPATH="$root" .venv/bin/python scripts/_containers.py "$@"; }

# The workers read their URLs from files, as from mounted secrets (AGNEXT_*_FILE).
mkdir -m 755 "$tmp/secrets"
printf '%s\n' "$AMQP_URL" >"$tmp/secrets/amqp-url"
printf '%s\n' "$REDIS_URL" >"$tmp/secrets/redis-url"
chmod 644 "$tmp/secrets/"*

client() {  # docker run arguments of a one-shot client container
  echo --rm --network host --no-healthcheck --label "agnext-test-containers=$run_id" \
    -e AGNEXT_AMQP_URL -e AGNEXT_REDIS_URL -e AGNEXT_NAMESPACE="$namespace"
}

# shellcheck disable=SC2046
docker run $(client) "$image" worker --check --app "$app" >"$tmp/check.log" 2>&1 ||
  { cat "$tmp/check.log" >&2; fail "agnext-broker worker --check in a container"; }
ok "worker --check in a container: $(tail -n 1 "$tmp/check.log")"

# --- three workers -----------------------------------------------------------------------------

say "starting 3 worker containers (read-only root, no capabilities, user from the image)"
for i in 1 2 3; do
  docker run -d --name "$run_id-worker-$i" --network host \
    --label "agnext-test-containers=$run_id" \
    --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
    --health-interval 1s --health-retries 3 \
    -v "$tmp/secrets:/run/secrets/agnext:ro" \
    -e AGNEXT_APP="$app" \
    -e AGNEXT_AMQP_URL_FILE=/run/secrets/agnext/amqp-url \
    -e AGNEXT_REDIS_URL_FILE=/run/secrets/agnext/redis-url \
    -e AGNEXT_NAMESPACE="$namespace" \
    -e AGNEXT_WORKER_ID="$run_id-worker-$i" \
    -e AGNEXT_HEALTH_PORT="${health_ports[$((i - 1))]}" \
    -e AGNEXT_HEALTH_HOST=127.0.0.1 \
    -e AGNEXT_DRAIN_TIMEOUT="$drain_timeout" \
    "$image" >/dev/null
done

health_of() { docker inspect --format '{{.State.Health.Status}}' "$1"; }
healthy() { [ "$(health_of "$1")" = healthy ]; }
running() { [ "$(docker inspect --format '{{.State.Running}}' "$1")" = true ]; }
for i in 1 2 3; do
  worker="$run_id-worker-$i"
  deadline=$((SECONDS + 60))
  until healthy "$worker"; do
    running "$worker" || fail "$worker exited ($(docker inspect --format '{{.State.ExitCode}}' "$worker"))"
    [ "$SECONDS" -lt "$deadline" ] || fail "$worker is $(health_of "$worker") after 60 s"
    sleep 0.2
  done
  until_ok 60 helper readyz "${health_ports[$((i - 1))]}" ||
    fail "$worker: /readyz says $(helper readyz "${health_ports[$((i - 1))]}")"
done
ok "3 workers: docker says healthy (HEALTHCHECK), /readyz says ready"
for i in 1 2 3; do
  docker logs "$run_id-worker-$i" >"$tmp/worker-$i.log" 2>&1
  grep -q '^{.*"message": *"worker ready"' "$tmp/worker-$i.log" ||
    fail "$run_id-worker-$i logged no JSON line 'worker ready'"
done
ok "the workers log JSON lines"

# --- the demo client ---------------------------------------------------------------------------

say "agnext-broker demo --items 50 in a client container"
demo_code=0
# shellcheck disable=SC2046
docker run $(client) "$image" demo --items 50 >"$tmp/demo.log" 2>&1 || demo_code=$?
[ "$demo_code" = 0 ] || { cat "$tmp/demo.log" >&2; fail "the demo client exited $demo_code"; }
grep -Eq '^report from reporter/default after [0-9.]+ ms: 150 item\(s\)$' "$tmp/demo.log" ||
  { cat "$tmp/demo.log" >&2; fail "the demo client's report is not 150 items"; }
ok "demo client: $(grep '^report from' "$tmp/demo.log")"

# --- docker stop of a worker in the middle of a batch --------------------------------------------

keys="$(seq -f 'key%02g' 1 20 | paste -sd, -)"
items=50
total=$((20 * items))
holder="$(helper owner "$namespace" coordinator default)"
target=""
for i in 1 2 3; do
  [ "$run_id-worker-$i" = "$holder" ] || { target="$run_id-worker-$i"; break; }
done
base="$(helper reported "$namespace")"
say "a batch of $total items; $target (not the coordinator's worker, $holder) is stopped at 30%"
docker run -d --name "$run_id-batch" --network host --no-healthcheck \
  --label "agnext-test-containers=$run_id" \
  -e AGNEXT_AMQP_URL -e AGNEXT_REDIS_URL -e AGNEXT_NAMESPACE="$namespace" \
  -e AGNEXT_RPC_TIMEOUT=120 \
  "$image" demo --keys "$keys" --items "$items" >/dev/null
helper wait-reported "$namespace" $((base + total * 3 / 10)) 120 >/dev/null ||
  fail "the batch never reached 30%"
at_stop=$(($(helper reported "$namespace") - base))
[ "$at_stop" -lt "$total" ] ||
  fail "the batch was over before the stop ($at_stop of $total): nothing was tested"
stop_began=$SECONDS
docker stop -t $((drain_timeout + 30)) "$target" >/dev/null
stop_took=$((SECONDS - stop_began))
code="$(docker inspect --format '{{.State.ExitCode}}' "$target")"
[ "$code" = 0 ] || fail "$target exited $code after docker stop"
docker logs "$target" >"$tmp/stopped.log" 2>&1
grep -q '"message": *"draining' "$tmp/stopped.log" || fail "$target logged no drain"
grep -q '"message": *"worker stopped"' "$tmp/stopped.log" ||
  fail "$target did not log 'worker stopped'"
[ "$stop_took" -le $((drain_timeout + 5)) ] ||
  fail "$target took ${stop_took} s to stop (drain timeout $drain_timeout s)"
ok "docker stop $target at $at_stop of $total items: drained and exited 0 in ${stop_took} s"

batch_code="$(timeout 180 docker wait "$run_id-batch")" || fail "the batch did not end in 180 s"
docker logs "$run_id-batch" >"$tmp/batch.log" 2>&1
[ "$batch_code" = 0 ] || { cat "$tmp/batch.log" >&2; fail "the batch's client exited $batch_code"; }
grep -Eq "^report from reporter/default after [0-9.]+ ms: $total item\\(s\\)$" "$tmp/batch.log" ||
  { cat "$tmp/batch.log" >&2; fail "the batch's report is not $total items"; }
ok "batch client: $(grep '^report from' "$tmp/batch.log") (nothing lost, nothing twice)"
for i in 1 2 3; do
  worker="$run_id-worker-$i"
  [ "$worker" = "$target" ] && continue
  running "$worker" || fail "$worker is not running any more"
done
ok "the other two workers still run"

# --- docker-compose.yml --------------------------------------------------------------------------

docker-compose -f docker-compose.yml config -q || fail "docker-compose config rejects docker-compose.yml"
services="$(docker-compose -f docker-compose.yml config --services | sort | paste -sd' ' -)"
[ "$services" = "demo rabbitmq redis worker" ] || fail "docker-compose.yml has services: $services"
ok "docker-compose config accepts docker-compose.yml ($services)"

say "containers: done in $((SECONDS - started)) s"
echo "containers: $passed passed, 0 failed"
