#!/usr/bin/env bash
# Runs every check and test: lint, types, then pytest (extra arguments go to pytest).
# Installs what it needs: .venv with the package and its dev tools, and RabbitMQ and Redis from
# the system's packages when they are missing (the tests start private servers of their own).
set -euo pipefail
source "$(dirname "$0")/_venv.sh" "[dev]"

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
# The Docker code executor's tests run code in containers of a base image made with debootstrap.
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "the tests need ${missing[*]}: install them with your package manager (as root) and run again" >&2
    exit 1
  fi
  echo "==> installing ${missing[*]} (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "==> ruff check" >&2
.venv/bin/ruff check agnext_broker tests scripts
echo "==> ruff format --check" >&2
.venv/bin/ruff format --check agnext_broker tests scripts
echo "==> mypy --strict" >&2
.venv/bin/mypy --strict
echo "==> pytest" >&2
exec .venv/bin/pytest "$@"
