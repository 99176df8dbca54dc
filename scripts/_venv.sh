# Sourced by the scripts: makes .venv with the package installed (extras in $1, e.g. "[dev]").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "agnext-broker needs Python 3.11 or newer (aio-pika 10 does); install it (e.g. apt-get install python3 python3-venv) and run again." >&2
  exit 1
fi

extras="${1:-}"
stamp=".venv/.installed${extras}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $("$python" --version)" >&2
  "$python" -m venv .venv || {
    echo "could not create a virtual environment; on Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 1
  }
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing agnext-broker${extras} into .venv" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
  touch "$stamp"
fi
