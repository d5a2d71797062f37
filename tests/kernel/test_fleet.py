"""From one host to a fleet, with the real engines: templates packaged by `pyaya package`, pushed to a registry on
127.0.0.1 (Debian's docker-registry, over TLS with a CA made here, since bpfman pulls over HTTPS only), pulled,
loaded and attached by bpfman 0.6 (built by scripts/setup-fleet.sh), their maps read back with pyaya from the pins
bpfman made; and a template's maps scraped by a real Prometheus server whose HTTP API is then asked for the value.

bpfman keeps its state in /run/bpfman and reads /etc/bpfman: here it runs in a mount namespace of this test's own
(tmpfs on /run, an overlay on /etc), so nothing of it is left on the machine; when the namespace ends, so does the
bpffs bpfman mounted in it, with every pin. Every server is started and stopped by these tests.

Run by `make test-fleet` (which installs the tools first); marked `fleet`, so `make test` leaves them out.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyaya import features, loaded_programs
from pyaya._cache import cache_home
from pyaya.package import bpfman_load_command, global_data, read_image
from pyaya.project import load_project
from pyaya.runtime import PinnedObject
from pyaya.testing import NetnsPair

pytestmark = pytest.mark.fleet

CACHE = cache_home()
BPFMAN = Path(os.environ.get("PYAYA_BPFMAN") or CACHE / "bpfman-install" / "bin" / "bpfman")
WAIT_SECONDS = 60


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run scripts/setup-fleet.sh (make test-fleet does)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(what: str, check: Callable[[], bool], process: subprocess.Popen[str] | None = None) -> None:
    """Polls ``check`` until it holds (a server starting, a scrape landing); fails after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited with {process.returncode}: {_output(process)}")
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        time.sleep(0.5)
    pytest.fail(f"{what}: not done after {WAIT_SECONDS} s")


_LOGS: dict[int, Path] = {}


def _output(process: subprocess.Popen[str]) -> str:
    log = _LOGS.get(process.pid)
    return log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""


@contextlib.contextmanager
def _server(argv: list[str], log: Path, **kwargs: object) -> Iterator[subprocess.Popen[str]]:
    """A server process, its output going to ``log`` (never a pipe that could fill up and block it), stopped
    (SIGTERM, then SIGKILL) however the test ends."""
    with log.open("w") as output:
        process = subprocess.Popen(argv, text=True, stdout=output, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
    _LOGS[process.pid] = log
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _served(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return bool(answer.status == 200)


def _pyaya(*args: str, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyaya", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


# -- the projects --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    root: Path
    object_path: Path


@pytest.fixture(scope="module")
def cargo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        **os.environ,
        "CARGO_TARGET_DIR": str(tmp_path_factory.mktemp("fleet-target")),
        "SOURCE_DATE_EPOCH": "1700000000",
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, cargo_env: dict[str, str]) -> Callable[[str], Built]:
    """A template scaffolded with its defaults and built, once per kind."""
    root = tmp_path_factory.mktemp("fleet-projects")
    cache: dict[str, Built] = {}

    def get(kind: str, **options: str) -> Built:
        if kind not in cache:
            name = f"fleet-{kind.replace('_', '-')}"
            flags = [f"--{key}={value}" for key, value in options.items()]
            created = subprocess.run(
                [sys.executable, "-m", "pyaya", "new", name, "-t", kind, "--no-check", *flags],
                cwd=root, env=cargo_env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert created.returncode == 0, created.stderr
            built = _pyaya("build", str(root / name), env=cargo_env)
            assert built.returncode == 0, built.stderr
            cache[kind] = Built(root / name, Path(built.stdout.strip().splitlines()[-1]))
        return cache[kind]

    return get


# -- a registry on 127.0.0.1, over TLS ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    host: str
    """``127.0.0.1:PORT``"""
    cert_dir: Path
    """The CA certificate (``ca.crt``), as skopeo's ``--dest-cert-dir`` wants it."""
    ca_file: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    _require("docker-registry", "openssl", "skopeo", "umoci")
    folder = tmp_path_factory.mktemp("registry")
    certs = folder / "certs"
    certs.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pyaya fleet test CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=certs)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
             "-out", "server.csr", cwd=certs)  # fmt: skip
    (certs / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "san.cnf", "-out", "server.crt", cwd=certs)  # fmt: skip
    ca_dir = folder / "ca"
    ca_dir.mkdir()
    shutil.copy(certs / "ca.crt", ca_dir / "ca.crt")
    port = _free_port()
    config = folder / "config.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(folder / "data")}},
                "http": {
                    "addr": f"127.0.0.1:{port}",
                    "tls": {"certificate": str(certs / "server.crt"), "key": str(certs / "server.key")},
                },
            }
        )
    )
    context = ssl.create_default_context(cafile=str(ca_dir / "ca.crt"))
    with _server(["docker-registry", "serve", str(config)], folder / "registry.log") as process:

        def up() -> bool:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/v2/", context=context, timeout=5) as answer:
                return bool(answer.status == 200)

        _wait("docker-registry start", up, process)
        yield Registry(f"127.0.0.1:{port}", ca_dir, ca_dir / "ca.crt")


# -- bpfman, in a mount namespace of its own ----------------------------------------------------------------------


@dataclass
class BpfmanNode:
    """bpfman's CLI run inside a mount namespace (held by ``holder``) where /run is a tmpfs and /etc an overlay."""

    holder: subprocess.Popen[str]
    env: dict[str, str]

    def path(self, inside: str | Path) -> Path:
        """A path of the namespace, as this process reaches it (through the holder's root)."""
        return Path(f"/proc/{self.holder.pid}/root") / str(inside).lstrip("/")

    def run(self, *args: str, check: bool = True) -> str:
        argv = ["nsenter", f"--target={self.holder.pid}", "--mount", "--", str(BPFMAN), *args]
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=300, check=False)
        if check and result.returncode != 0:
            pytest.fail(f"`bpfman {' '.join(args)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout + result.stderr

    def programs(self) -> list[int]:
        listing = self.run("list", "programs")
        return [int(line.split()[0]) for line in listing.splitlines()[1:] if line.split() and line.split()[0].isdigit()]


def _field(output: str, name: str) -> str:
    """A row of one of bpfman's tables: ``Program ID:  42`` -> ``"42"``."""
    match = re.search(rf"^\s*{re.escape(name)}:?\s+(\S+)", output, re.MULTILINE)
    assert match is not None, f"no {name} in bpfman's output:\n{output}"
    return match.group(1)


# bpfman 0.6 refuses to start ("must be privileged to run bpfman") when it cannot raise RLIMIT_MEMLOCK to
# unlimited, even on kernels (5.11 and later) that charge BPF memory to the memory cgroup and never look at that
# limit. Where this process lacks CAP_SYS_RESOURCE and its hard limit is lower (a container), the test preloads this
# into bpfman so that the refused raise of that one limit counts as done; every other call is glibc's own.
_MEMLOCK_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/resource.h>

static int forgive(int resource, int rc) {
    return rc != 0 && resource == RLIMIT_MEMLOCK && errno == EPERM ? 0 : rc;
}

int setrlimit(__rlimit_resource_t resource, const struct rlimit *limit) {
    int (*real)(__rlimit_resource_t, const struct rlimit *) = dlsym(RTLD_NEXT, "setrlimit");
    return forgive(resource, real(resource, limit));
}

int setrlimit64(__rlimit_resource_t resource, const struct rlimit64 *limit) {
    int (*real)(__rlimit_resource_t, const struct rlimit64 *) = dlsym(RTLD_NEXT, "setrlimit64");
    return forgive(resource, real(resource, limit));
}
"""


def _memlock_shim(folder: Path) -> Path | None:
    """The shim above, built, when this machine needs it (see there); None when RLIMIT_MEMLOCK can be raised."""
    raise_limit = "import resource; resource.setrlimit(resource.RLIMIT_MEMLOCK, (-1, -1))"
    if subprocess.run([sys.executable, "-c", raise_limit], capture_output=True, check=False).returncode == 0:
        return None
    if features.kernel_version() < (5, 11, 0):
        pytest.skip("bpfman needs RLIMIT_MEMLOCK raised on this kernel (< 5.11) and CAP_SYS_RESOURCE is missing")
    _require("cc")
    folder.mkdir(exist_ok=True)
    (folder / "memlock.c").write_text(_MEMLOCK_SHIM)
    built = subprocess.run(
        ["cc", "-shared", "-fPIC", "-O2", "-o", "memlock.so", "memlock.c", "-ldl"],
        cwd=folder, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return folder / "memlock.so"


@pytest.fixture(scope="module")
def bpfman(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BpfmanNode]:
    if not BPFMAN.is_file():
        pytest.skip(f"bpfman 0.6 is not built at {BPFMAN}: run scripts/setup-fleet.sh (make test-fleet does)")
    _require("unshare", "nsenter")
    if not any(fs == "overlay" for fs in Path("/proc/filesystems").read_text().split()):
        pytest.skip("the kernel has no overlay file system (/proc/filesystems): bpfman's /etc cannot be isolated")
    scratch = tmp_path_factory.mktemp("bpfman-ns")
    # Signing is verified against sigstore's public TUF repository by default, which this machine cannot reach.
    script = f"""
set -e
mount -t tmpfs pyaya-fleet {scratch}
mkdir {scratch}/upper {scratch}/work
mount -t overlay overlay -o lowerdir=/etc,upperdir={scratch}/upper,workdir={scratch}/work /etc
mkdir -p /etc/bpfman
printf '[signing]\\nallow_unsigned = true\\nverify_enabled = false\\n' > /etc/bpfman/bpfman.toml
mount -t tmpfs pyaya-fleet-run /run
echo ready
exec sleep 3600
"""
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        ready, _, _ = select.select([holder.stdout], [], [], WAIT_SECONDS)
        line = holder.stdout.readline() if ready else ""
        if line.strip() != "ready":
            holder.kill()
            pytest.fail(f"the mount namespace for bpfman did not come up: {line}{holder.communicate()[1]}")
        env = {**os.environ, "SSL_CERT_FILE": str(registry.ca_file), "RUST_LOG": "warn"}
        shim = _memlock_shim(scratch.parent / f"{scratch.name}-shim")
        if shim is not None:
            env["LD_PRELOAD"] = str(shim)
        node = BpfmanNode(holder, env)
        yield node
        for leftover in node.programs():
            node.run("unload", str(leftover), check=False)
    finally:
        holder.kill()
        holder.wait()


def _push(built: Built, registry: Registry, name: str, env: dict[str, str]) -> str:
    image = f"{registry.host}/{name}:0.1.0"
    result = _pyaya("package", str(built.root), "--tag", f"{name}:0.1.0", "--push", image, "--cert-dir",
                    str(registry.cert_dir), env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{image}@sha256:" in result.stdout
    return image


def _load(node: BpfmanNode, image: str, programs: dict[str, str], globals_: dict[str, bytes]) -> tuple[int, Path]:
    """``bpfman load image``: the program's kernel id and the folder bpfman pinned its maps in."""
    # The command `pyaya package` prints, plus where bpfman pulls from and a name to list the programs by.
    argv = bpfman_load_command(image, programs, globals_)[1:]
    output = node.run(*argv, "--pull-policy", "Always", "--application", "pyaya-fleet-test")
    return int(_field(output, "Program ID")), Path(_field(output, "Map Pin Path"))


def _gone(node: BpfmanNode, program_id: int, maps: Path) -> None:
    assert program_id not in node.programs()
    assert not node.path(maps).exists()
    # The kernel frees a program once its last reference is dropped, after an RCU grace period: poll for that.
    _wait(f"program {program_id} freed", lambda: program_id not in {pid for pid, _n, _t in loaded_programs()})


def _run_as(uid: int, count: int) -> None:
    for _ in range(count):
        subprocess.run(["/bin/true"], user=uid, group=uid, check=True, timeout=30)


def test_bpfman_loads_the_tracepoint_template_from_the_registry(
    project: Callable[..., Built], registry: Registry, bpfman: BpfmanNode, cargo_env: dict[str, str]
) -> None:
    built = project("tracepoint")
    image = _push(built, registry, "fleet-tracepoint", cargo_env)
    layout = built.root.parent / "oci-check"
    assert _pyaya("package", str(built.root), "--tag", "fleet-tracepoint:0.1.0", "--output", str(layout),
                  env=cargo_env).returncode == 0  # fmt: skip
    packaged = read_image(layout)
    assert packaged.programs == {"fleet_tracepoint": "tracepoint"}
    assert packaged.maps == {"EVENTS": "ringbuf", "EVENTS_LOST": "per_cpu_array", "EXEC_COUNTS": "hash"}
    settings = load_project(built.root / "pyaya.toml").fleet
    values = global_data(settings.globals, built.object_path.read_bytes())
    assert set(values) == {"PARENT_TGID"}  # the template's kernel_field!, filled from this kernel's BTF
    program_id, maps = _load(bpfman, image, packaged.programs, values)
    try:
        attached = bpfman.run("attach", str(program_id), "tracepoint", "--tracepoint",
                              str(settings.attach["fleet_tracepoint"].tracepoint))  # fmt: skip
        assert int(_field(attached, "Link ID")) > 0
        # What main.py reads in the DaemonSet: the pins, typed by the object's BTF.
        pinned = PinnedObject(bpfman.path(maps), built.object_path)
        assert {"EVENTS", "EXEC_COUNTS"} <= set(pinned.maps)
        uid = 61000 + os.getpid() % 1000
        _run_as(uid, 5)
        counts = pinned.maps["EXEC_COUNTS"]
        assert counts[uid] == 5
        # The ppid comes from task_struct offsets, which only reach the program through bpfman's globalData.
        events = [e for e in pinned.maps["EVENTS"].drain(None, 1) if e.uid == uid]
        assert len(events) == 5
        assert {e.ppid for e in events} == {os.getpid()}
        assert {e.filename for e in events} == {"/bin/true"}
        pinned.close()
    finally:
        bpfman.run("unload", str(program_id))
    _gone(bpfman, program_id, maps)


def test_bpfman_loads_the_xdp_template_where_freplace_works(
    project: Callable[..., Built], registry: Registry, bpfman: BpfmanNode, cargo_env: dict[str, str],
    netns_pair: NetnsPair,
) -> None:  # fmt: skip
    built = project("xdp")
    image = _push(built, registry, "fleet-xdp", cargo_env)
    trampolines = features.fentry_supported()
    if not trampolines.ok:
        # bpfman loads an XDP program as an freplace extension of its dispatcher: refused like every trampoline.
        argv = bpfman_load_command(image, {"fleet_xdp": "xdp"}, {})[1:]
        refused = bpfman.run(*argv, "--pull-policy", "Always", check=False)
        assert "Operation not permitted" in refused
        assert bpfman.programs() == []
        pytest.skip(
            "bpfman pulled the image but cannot load XDP programs here: it loads them as freplace extensions of "
            f"its dispatcher (BPF trampolines), and {trampolines.reason}"
        )
    program_id, maps = _load(bpfman, image, {"fleet_xdp": "xdp"}, {})
    try:
        pinned = PinnedObject(bpfman.path(maps), built.object_path)
        assert {"PACKETS", "BYTES", "DROP_LIST", "DROPPED"} <= set(pinned.maps)
        bpfman.run("attach", str(program_id), "xdp", "--iface", netns_pair.host_interface, "--priority", "50")
        netns_pair.run("ping", "-c", "3", "-i", "0.2", netns_pair.host_address)
        _wait("the XDP program counting the pings", lambda: pinned.maps["PACKETS"][1].sum() >= 3)  # ICMP
        pinned.close()
    finally:
        bpfman.run("unload", str(program_id))
    _gone(bpfman, program_id, maps)


def test_bpfman_attaches_the_classifier_template_with_tcx(
    project: Callable[..., Built], registry: Registry, bpfman: BpfmanNode, cargo_env: dict[str, str],
    netns_pair: NetnsPair,
) -> None:  # fmt: skip
    ok, reason = features.tcx_supported()
    if not ok:
        pytest.skip(reason)
    built = project("classifier")
    image = _push(built, registry, "fleet-classifier", cargo_env)
    settings = load_project(built.root / "pyaya.toml").fleet.attach["fleet_classifier"]
    program_id, maps = _load(bpfman, image, {"fleet_classifier": "tcx"}, {})
    try:
        bpfman.run("attach", str(program_id), "tcx", "--iface", netns_pair.host_interface, "--direction",
                   settings.direction, "--priority", str(settings.priority))  # fmt: skip
        with netns_pair.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(4):
                sender.sendto(b"fleet", (netns_pair.host_address, 9))
        pinned = PinnedObject(bpfman.path(maps), built.object_path)
        flows = pinned.maps["FLOWS"]
        _wait("the classifier counting the datagrams", lambda: sum(v.packets for v in flows.values()) >= 4)
        pinned.close()
    finally:
        bpfman.run("unload", str(program_id))
    _gone(bpfman, program_id, maps)


# -- Prometheus ----------------------------------------------------------------------------------------------------


def test_prometheus_scrapes_a_running_template(
    project: Callable[..., Built], cargo_env: dict[str, str], tmp_path: Path
) -> None:
    _require("prometheus")
    pytest.importorskip("prometheus_client", reason="prometheus_client is not installed: pip install 'pyaya[metrics]'")
    built = project("tracepoint")
    metrics_port, prometheus_port = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "pyaya", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
                ],
            }
        )
    )
    run = [sys.executable, "-m", "pyaya", "run", str(built.root), "--no-build", "--json", "--duration", "300",
           "--metrics", f"127.0.0.1:{metrics_port}"]  # fmt: skip
    prometheus = ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                  f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"]  # fmt: skip
    uid = 62000 + os.getpid() % 1000
    query = f'fleet_tracepoint_exec_counts_total{{uid="{uid}"}}'
    api = f"http://127.0.0.1:{prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": query})

    def value() -> float | None:
        with urllib.request.urlopen(api, timeout=5) as answer:
            result = json.load(answer)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    with _server(run, tmp_path / "pyaya-run.log", env=cargo_env) as tool:
        _wait("pyaya run serving /metrics", lambda: _served(f"http://127.0.0.1:{metrics_port}/metrics"), tool)
        _run_as(uid, 7)
        with _server(prometheus, tmp_path / "prometheus.log", cwd=tmp_path) as server:
            _wait("Prometheus scraping 7 execs", lambda: value() == 7.0, server)
            assert value() == 7.0
        tool.terminate()
        assert tool.wait(timeout=30) == 0
