#!/usr/bin/env bash
# Installs agnext-broker into .venv (first run only) and runs the example on the standalone runtime.
set -euo pipefail
source "$(dirname "$0")/_venv.sh" ""
exec .venv/bin/agnext-broker demo "$@"
