"""A Docker engine and a local image with python3, for the Docker code executor's tests.

``ensure_docker_engine()`` returns when ``docker info`` answers: as root, it installs Debian's
``docker.io`` (and ``debootstrap``) with apt-get when they are missing, and starts ``dockerd``
when none runs, leaving it running (another test run or engineer may use it).
``ensure_python_image()`` returns the name of a local image with ``sh`` and ``python3``:
``AGNEXT_TEST_EXEC_IMAGE`` if set, else ``agnext-base:bookworm`` (the worker image's base) or
``agnext-exec-base:bookworm`` if Docker has one, else it makes ``agnext-exec-base:bookworm``
with ``debootstrap --variant=minbase bookworm`` and ``docker import`` (as root, a few minutes,
once): no registry is reachable from the test machines.

Anything missing raises :class:`DockerUnavailable` with what to install or set; the tests turn
that into a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

IMAGE_ENV = "AGNEXT_TEST_EXEC_IMAGE"
REUSED_IMAGES = ("agnext-base:bookworm", "agnext-exec-base:bookworm")
BUILT_IMAGE = "agnext-exec-base:bookworm"
SUITE = "bookworm"
DOCKERD_LOG = Path(tempfile.gettempdir()) / "agnext-test-dockerd.log"


class DockerUnavailable(RuntimeError):
    pass


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _engine_answers() -> bool:
    try:
        return _docker("info", timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _install_packages() -> None:
    """Debian's docker.io and debootstrap, when root may install them."""
    wanted = [
        package
        for package, program in (("docker.io", "dockerd"), ("debootstrap", "debootstrap"))
        if shutil.which(program) is None
    ]
    if not wanted or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *wanted],
    ):
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise DockerUnavailable(f"{' '.join(command)} failed: {done.stderr[-1000:]}")


def _start_dockerd(arguments: list[str]) -> bool:
    # Started by a shell that exits at once: the daemon outlives the test run on purpose, and
    # no Popen object of this process is left to wait for it.
    command = " ".join(["dockerd", *arguments, ">>", str(DOCKERD_LOG), "2>&1", "& echo $!"])
    started = subprocess.run(
        ["setsid", "sh", "-c", command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(started.stdout.strip())
    deadline = time.monotonic() + 60
    while not _engine_answers():
        if time.monotonic() > deadline or not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            return False
        time.sleep(0.2)
    return True


def ensure_docker_engine() -> None:
    _install_packages()
    if shutil.which("docker") is None:
        raise DockerUnavailable(
            "the Docker executor tests need Docker: apt-get install docker.io (as root)"
        )
    if _engine_answers():
        return
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        raise DockerUnavailable(
            "no Docker engine answers `docker info`, and starting dockerd needs root and "
            "dockerd (apt-get install docker.io)"
        )
    # Where the kernel lacks what the defaults need (iptables, overlayfs), the second works.
    for arguments in ([], ["--iptables=false", "--storage-driver=vfs"]):
        if _start_dockerd(arguments):
            return
    tail = DOCKERD_LOG.read_text(errors="replace").splitlines()[-5:]
    raise DockerUnavailable("dockerd did not start:\n" + "\n".join(tail))


def _image_exists(image: str) -> bool:
    return _docker("image", "inspect", image).returncode == 0


def _has_python3(image: str) -> bool:
    probe = _docker("run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "command -v python3")
    return probe.returncode == 0


def ensure_python_image() -> str:
    chosen = os.environ.get(IMAGE_ENV)
    if chosen:
        if not _image_exists(chosen):
            raise DockerUnavailable(f"{IMAGE_ENV}={chosen}: Docker has no such image")
        return chosen
    for image in REUSED_IMAGES:
        if _image_exists(image) and _has_python3(image):
            return image
    _build_base_image(BUILT_IMAGE)
    return BUILT_IMAGE


def _debian_mirror() -> str:
    mirror = os.environ.get("DEBIAN_MIRROR")
    if mirror:
        return mirror
    targets = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE) $(COMPONENT)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for line in targets.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] == SUITE and fields[2] == "main":
            return fields[0]
    raise DockerUnavailable(
        f"no Debian mirror for {SUITE} in apt's sources: run apt-get update, or set "
        f"DEBIAN_MIRROR, or set {IMAGE_ENV} to an image with python3"
    )


def _build_base_image(image: str) -> None:
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        raise DockerUnavailable(
            f"Docker has no image with python3 ({', '.join(REUSED_IMAGES)}), and making "
            f"{image} needs root and debootstrap (apt-get install debootstrap), or set "
            f"{IMAGE_ENV}"
        )
    mirror = _debian_mirror()
    work = tempfile.mkdtemp(prefix="agnext-exec-base-", dir="/var/tmp")
    try:
        rootfs = Path(work) / "rootfs"
        built = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3", SUITE, str(rootfs), mirror],
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            raise DockerUnavailable("debootstrap failed:\n" + built.stdout[-2000:] + built.stderr)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
        )
        imported = subprocess.run(
            ["docker", "import", "--change", 'CMD ["python3"]', "-", image],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0:
            raise DockerUnavailable("docker import failed: " + imported.stderr)
    finally:
        _remove_tree(Path(work))


def _remove_tree(work: Path) -> None:
    # debootstrap mounts proc and sys inside the tree while it runs: never remove through them.
    for mount in ("proc", "sys", "dev/pts", "dev"):
        target = work / "rootfs" / mount
        if os.path.ismount(target):
            subprocess.run(["umount", "-l", str(target)], check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
