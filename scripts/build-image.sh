#!/usr/bin/env bash
# Builds the agnext-broker image from deploy/Dockerfile: the wheels of the package and of all it
# needs are made here (pip wheel, into deploy/wheels/), so the build itself reaches no index.
#
#   scripts/build-image.sh [TAG]            # default tag agnext-broker:latest
#   BASE_IMAGE=python:3.11-slim scripts/build-image.sh   # any base with python3 3.11+ on PATH
#
# With the default BASE_IMAGE, agnext-base:bookworm, the base is made here when Docker does not
# have it yet: Debian bookworm's minbase with python3, python3-venv and ca-certificates, by
# debootstrap (as root; a few minutes, once) from the mirror apt uses (or DEBIAN_MIRROR), then
# `docker import`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

tag="${1:-agnext-broker:latest}"
base_image="${BASE_IMAGE:-agnext-base:bookworm}"
suite="bookworm"

dir=""
cleanup() {
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  # debootstrap mounts proc and sys inside the tree while it runs: never remove through them.
  local m
  for m in proc sys dev/pts dev; do
    if mountpoint -q "$dir/rootfs/$m" 2>/dev/null; then umount -l "$dir/rootfs/$m" || true; fi
  done
  rm -rf --one-file-system "$dir"
}
trap cleanup EXIT

make_base_image() {
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "no image $base_image and no debootstrap to make it: apt-get install debootstrap (as root), or set BASE_IMAGE=python:3.11-slim" >&2
    return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "making $base_image needs root (debootstrap); or set BASE_IMAGE=python:3.11-slim" >&2
    return 1
  fi
  local mirror="${DEBIAN_MIRROR:-}"
  if [ -z "$mirror" ]; then
    # The mirror this machine's apt uses for the suite (as configured, whatever its host).
    mirror="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 2>/dev/null |
      awk -v suite="$suite" '$2 == suite && $3 == "main" && !found { print $1; found = 1 }')"
  fi
  if [ -z "$mirror" ]; then
    echo "no Debian mirror for $suite in apt's sources (run apt-get update, or set DEBIAN_MIRROR)" >&2
    return 1
  fi
  dir="$(mktemp -d /var/tmp/agnext-base.XXXXXX)"
  echo "==> making $base_image with debootstrap ($suite minbase + python3; a few minutes, once)" >&2
  if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$suite" "$dir/rootfs" "$mirror" >"$dir/debootstrap.log" 2>&1; then
    tail -n 30 "$dir/debootstrap.log" >&2
    echo "debootstrap failed" >&2
    return 1
  fi
  rm -rf "$dir/rootfs/var/cache/apt/archives/"*.deb "$dir/rootfs/var/lib/apt/lists/"* \
    "$dir/rootfs/var/log/"*.log "$dir/rootfs/debootstrap"
  tar --numeric-owner -C "$dir/rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "Debian $suite minbase with python3 (debootstrap)" \
    - "$base_image" >/dev/null
  docker run --rm "$base_image" python3 -c 'import sys, venv; assert sys.version_info >= (3, 11)'
}

if ! docker image inspect "$base_image" >/dev/null 2>&1; then
  if [ "$base_image" = "agnext-base:$suite" ]; then
    make_base_image
  else
    echo "==> pulling $base_image" >&2
    docker pull "$base_image" >/dev/null
  fi
else
  echo "==> base image $base_image is there" >&2
fi

python=.venv/bin/python
[ -x "$python" ] || source scripts/_venv.sh ""  # .venv with the package, no extras
wheel() {  # pip wheel into deploy/wheels/deps, its output shown only if it fails
  local log
  log="$(mktemp)"
  if ! "$python" -m pip wheel --disable-pip-version-check --wheel-dir deploy/wheels/deps "$@" \
      >"$log" 2>&1; then
    grep -v 'is ignored: it is neither a file nor a directory' "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}
# deploy/wheels/app/: the package's own wheel, made every time. deploy/wheels/deps/: everything
# it needs, made again when pyproject.toml changed since the last time (or with FRESH_WHEELS=1).
stamp=deploy/wheels/deps/.made-from-pyproject
if [ -n "${FRESH_WHEELS:-}" ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> wheels of agnext-broker[otel] and all it needs (deploy/wheels/)" >&2
  rm -rf deploy/wheels
  wheel '.[otel]'
  touch "$stamp"
else
  echo "==> the wheel of agnext-broker (deploy/wheels/app/; deploy/wheels/deps/ is there)" >&2
  wheel --no-deps .
fi
rm -rf deploy/wheels/app
mkdir -p deploy/wheels/app
mv deploy/wheels/deps/agnext_broker-*.whl deploy/wheels/app/
# pip chose them by this Python's environment markers; the base image's Python may be another
# release (bookworm's is 3.11.2, for which redis also needs async-timeout). The base image's
# Python resolves from the wheels, offline, with this pip (pure Python, mounted), and whatever
# it misses is added.
pip_dir="$("$python" -c 'import os, pip; print(os.path.dirname(pip.__file__))')"
complete=""
for _ in 1 2 3 4 5 6 7 8; do
  if resolved="$(docker run --rm --network none -e PYTHONPATH=/opt/host-pip \
      -v "$pip_dir:/opt/host-pip/pip:ro" -v "$root/deploy/wheels:/wheels:ro" "$base_image" \
      python3 -m pip install --quiet --disable-pip-version-check --no-cache-dir --dry-run \
        --break-system-packages --ignore-installed --no-index --find-links /wheels/deps \
        --find-links /wheels/app "agnext-broker[otel]" 2>&1)"; then
    complete=yes
    break
  fi
  missing="$(printf '%s\n' "$resolved" |
    sed -n 's/.*No matching distribution found for \([^; ]*\).*/\1/p' | awk 'NR == 1')"
  if [ -z "$missing" ]; then
    printf '%s\n' "$resolved" >&2
    echo "the base image's Python cannot install agnext-broker from deploy/wheels" >&2
    exit 1
  fi
  echo "==> $base_image's Python also needs $missing" >&2
  wheel "$missing"
done
[ -n "$complete" ] || { echo "deploy/wheels is still incomplete for $base_image" >&2; exit 1; }

echo "==> docker build -f deploy/Dockerfile -t $tag (BASE_IMAGE=$base_image)" >&2
build_log="$(mktemp)"
# The builder stage is tagged too, so that its layers (the dependencies' above all) stay cached;
# then the images these builds replaced, left without a tag, are removed (only those).
if ! { docker build -f deploy/Dockerfile --build-arg "BASE_IMAGE=$base_image" \
         --target builder -t agnext-broker-builder:latest . &&
       docker build -f deploy/Dockerfile --build-arg "BASE_IMAGE=$base_image" -t "$tag" .; } \
    >"$build_log" 2>&1; then
  cat "$build_log" >&2
  rm -f "$build_log"
  echo "docker build failed" >&2
  exit 1
fi
rm -f "$build_log"
for label in agnext-broker.stage=builder org.opencontainers.image.title=agnext-broker; do
  docker image prune --force --filter "label=$label" >/dev/null
done
echo "==> built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }'))" >&2
