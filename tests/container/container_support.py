"""The image under test and its containers: find a docker that can build it, make its base, build it
from this checkout, run containers of it.

Why so:
- No image registry is reachable where CI runs, so the base (the Dockerfile's BASE) is made from
  Debian's packages: `debootstrap` a minimal bookworm with python3 and python3-venv from the mirror
  apt already uses, `docker import` it. The root file system is cached as a tarball under .cache/
  (ignored by git), so it is made once per checkout; PAYMENTS_SANDBOX_IMAGE_BASE names any other
  base instead (`python:3.11-slim` where a registry is reachable).
- The Dockerfile needs BuildKit (its pip step mounts the CA bundle as a build secret, which never
  lands in a layer). Docker 23+ builds with BuildKit through the buildx plugin; before 23 the CLI
  drives the daemon's own BuildKit with DOCKER_BUILDKIT=1. So the CLI is one that has buildx or is
  older than 23 (Debian bookworm's docker.io is 20.10); PAYMENTS_SANDBOX_DOCKER names one instead.
- Builds and containers use the host's network only (`--network host`), never a bridge: so a
  container listens on the host's 127.0.0.1, on a free port handed over as PAYMENTS_SANDBOX_PORT.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from sandbox.launcher import HOST, free_port

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "container"
IMAGE = "payments-sandbox:test"  # not :latest, which is the name the README tells users to build
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Of no use in an image: apt's downloads and lists, documentation, translations (~140 MB of ~275 MB).
TRIMMED = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # `docker import` sets no PATH
DEFAULT_MIRROR = "http://deb.debian.org/debian"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")  # Debian's system bundle
START_TIMEOUT = 30.0


class Unavailable(Exception):
    """Docker, or what the base needs, is missing here: the tests skip, or fail when told to."""


class BuildError(Exception):
    """A step of making the image failed; the message ends with its output."""


@dataclass(frozen=True)
class Docker:
    """A docker CLI talking to a running daemon (DOCKER_HOST, when set, says which)."""

    cli: str

    def run(
        self, *args: str, check: bool = True, timeout: float = 60.0, **env: str
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.cli, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
        )
        if check and done.returncode != 0:
            raise BuildError(f"`docker {' '.join(args)[:300]}` exited with {done.returncode}:\n{_tail(done)}")
        return done

    def has_image(self, name: str) -> bool:
        return self.run("image", "inspect", name, check=False).returncode == 0


def _tail(done: subprocess.CompletedProcess[str], chars: int = 4000) -> str:
    return (done.stdout + done.stderr)[-chars:]


def _can_build(cli: str) -> bool:
    """Whether this CLI builds with BuildKit: it has buildx, or it is older than 23."""
    if subprocess.run([cli, "buildx", "version"], capture_output=True, timeout=30).returncode == 0:
        return True
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=30).stdout
    major = re.search(r"version (\d+)\.", version)
    return major is not None and int(major.group(1)) < 23


def find_docker() -> Docker:
    """The CLI to use, with its daemon answering; Unavailable says why there is none."""
    named = os.environ.get("PAYMENTS_SANDBOX_DOCKER")
    found = [named] if named else [p for p in (shutil.which("docker"), "/usr/bin/docker") if p and Path(p).exists()]
    if not found:
        raise Unavailable("no docker CLI on PATH")
    builders = [cli for cli in dict.fromkeys(found) if _can_build(cli)]
    if not builders:
        raise Unavailable(f"{found[0]} cannot build with BuildKit (Docker 23+ without the buildx plugin)")
    docker = Docker(builders[0])
    server = docker.run("version", "--format", "{{.Server.Version}}", check=False, timeout=30)
    if server.returncode != 0:
        raise Unavailable(f"no docker daemon answers {docker.cli}: {server.stderr.strip()[-300:]}")
    return docker


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The URI apt fetches bookworm's packages from (deb822 .sources or one-line .list files)."""
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):  # deb822: `URIs:` and `Suites:` in one stanza
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.MULTILINE))
            if SUITE in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
                return fields.get("URIs", DEFAULT_MIRROR).split()[0]
        for line in text.splitlines():  # one-line: deb [options] URI SUITE COMPONENTS
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    return DEFAULT_MIRROR


def _recipe_key() -> str:
    """Names the base by what goes into it, so a changed recipe makes a new one."""
    recipe = f"{SUITE} {' '.join(PACKAGES)} minus {' '.join(TRIMMED)}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _make_root_tarball(dest: Path) -> None:
    """debootstrap a minimal system into a scratch folder, trim it, tar it to `dest` (atomically:
    a run that dies half way leaves no tarball for the next one to trust)."""
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise Unavailable(
            "making the base image needs root and debootstrap (apt-get install debootstrap); "
            "or set PAYMENTS_SANDBOX_IMAGE_BASE=python:3.11-slim where a registry is reachable"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="base-", dir=dest.parent))
    try:
        root = scratch / "root"
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root)]
        made = subprocess.run([*argv, debian_mirror()], capture_output=True, text=True, timeout=900)
        if made.returncode != 0:
            raise BuildError(f"debootstrap exited with {made.returncode}:\n{_tail(made)}")
        for folder in TRIMMED:
            shutil.rmtree(root / folder, ignore_errors=True)
        partial = scratch / "root.tar"
        packed = subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], capture_output=True, text=True
        )
        if packed.returncode != 0:
            raise BuildError(f"tar exited with {packed.returncode}:\n{_tail(packed)}")
        partial.replace(dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def base_image(docker: Docker) -> str:
    """The Dockerfile's BASE: PAYMENTS_SANDBOX_IMAGE_BASE, else the Debian base (made when missing)."""
    named = os.environ.get("PAYMENTS_SANDBOX_IMAGE_BASE")
    if named:
        return named
    name = f"payments-sandbox-base:{SUITE}-{_recipe_key()}"
    if not docker.has_image(name):
        tarball = CACHE / f"{SUITE}-{_recipe_key()}.tar"
        if not tarball.exists():
            _make_root_tarball(tarball)
        docker.run("import", "--change", f"ENV PATH={BASE_PATH}", str(tarball), name, timeout=300)
    return name


def build_image(docker: Docker, base: str, tag: str = IMAGE) -> str:
    """`docker build` of this checkout on `base`, handing pip what it has on this host: the system
    CA bundle (as a build secret) and an index (PIP_INDEX_URL), when there are any."""
    argv = ["build", "--network", "host", "--build-arg", f"BASE={base}", "--tag", tag]
    ca = Path(os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or HOST_CA)
    if ca.is_file():
        argv += ["--secret", f"id=pip_ca,src={ca}"]
    if os.environ.get("PIP_INDEX_URL"):
        argv += ["--build-arg", f"PIP_INDEX_URL={os.environ['PIP_INDEX_URL']}"]
    docker.run(*argv, str(ROOT), timeout=900, DOCKER_BUILDKIT="1")
    return tag


def prepare_image(docker: Docker) -> str:
    """The base, then the image, made by one test session at a time: each xdist worker has a session
    of its own, and the second to come finds the base made and the build cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return build_image(docker, base_image(docker))


@dataclass(frozen=True)
class Container:
    """A running container of the image, serving on the host's 127.0.0.1:`port`."""

    docker: Docker
    name: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def inspect(self, template: str) -> str:
        return self.docker.run("inspect", "--format", template, self.name).stdout.strip()

    def logs(self) -> str:
        done = self.docker.run("logs", self.name, check=False)
        return done.stdout + done.stderr

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.docker.run("exec", self.name, *argv, check=False)


def _ours(response: httpx.Response) -> bool:
    """A 200 from the sandbox inside the container, not from another server that holds the port."""
    try:
        return response.status_code == 200 and response.json()["spec"]["path"].startswith("/opt/payments-sandbox/")
    except (ValueError, KeyError, TypeError):
        return False


def _wait_serving(container: Container, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if container.inspect("{{.State.Running}}") != "true":
                raise BuildError(f"container {container.name} exited:\n{container.logs()[-3000:]}")
            try:
                if _ours(client.get(f"{container.base_url}/__sandbox/health")):
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.1)
    raise BuildError(f"container {container.name} did not serve within {timeout:g} s:\n{container.logs()[-3000:]}")


@contextmanager
def running(
    docker: Docker,
    image: str,
    *,
    label: str,
    env: Mapping[str, str] | None = None,
    volumes: Sequence[str] = (),
) -> Iterator[Container]:
    """`docker run` the image on the host's network with PAYMENTS_SANDBOX_PORT set to a free port,
    once it serves; the container is removed on the way out, whatever happened."""
    name = f"payments-sandbox-test-{uuid.uuid4().hex[:12]}"
    port = free_port()
    argv = ["run", "--detach", "--network", "host", "--name", name, "--label", label]
    for key, value in {"PAYMENTS_SANDBOX_PORT": str(port), **(env or {})}.items():
        argv += ["--env", f"{key}={value}"]
    for volume in volumes:
        argv += ["--volume", volume]
    container = Container(docker, name, port)
    try:
        docker.run(*argv, image)
        _wait_serving(container)
        yield container
    finally:
        docker.run("rm", "--force", "--volumes", name, check=False)


RunImage = Callable[..., AbstractContextManager[Container]]  # the conftest's run_image fixture
