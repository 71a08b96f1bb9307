"""The one fixture module: virtual boards, MicroPython snippets and the RabbitMQ broker."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"
sys.path.insert(0, str(TOOLS))

import build  # noqa: E402
import deps  # noqa: E402

MICROPYTHON = str(Path(sys.executable).parent / "micropython")


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- MicroPython snippets


class MpyResult:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def lines(self):
        return self.out.splitlines()

    def json(self):
        """The last stdout line, parsed as JSON (tests print their result last)."""
        return json.loads(self.lines()[-1])


def run_mpy(code, cwd, path=(), heap="1m", env=None, timeout=60):
    """Run code under the Unix port with lib/, the fetched deps and path on MICROPYPATH."""
    dirs = [str(p) for p in path] + [str(REPO / "lib"), str(deps.DEPS), ".frozen"]
    e = dict(os.environ, MICROPYPATH=":".join(dirs))
    e.update(env or {})
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=" + heap, "-c", code], cwd=cwd,
                          env=e, capture_output=True, text=True, timeout=timeout)
    return MpyResult(proc)


@pytest.fixture
def mpy(tmp_path):
    """mpy(code, **kw) runs a MicroPython snippet in a fresh folder; returns MpyResult."""
    deps.fetch()

    def run(code, **kw):
        kw.setdefault("cwd", tmp_path)
        return run_mpy(code, **kw)

    return run


# ---------------------------------------------------------------- headless Chromium

CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
SHOTS = REPO / "docs" / "screenshots"
# Root needs --no-sandbox; the rest keeps Chromium off the (closed) network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture
def launch_chromium():
    """launch_chromium(resolve_to=None) -> Debian's Chromium under Playwright, headless.

    resolve_to=port maps every host name to 127.0.0.1:port, as the captive DNS does on a phone.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is required: apt-get install chromium")
    pw = sync_playwright().start()
    browsers = []

    def launch(resolve_to=None):
        args = list(CHROMIUM_ARGS)
        if resolve_to:
            args.append("--host-resolver-rules=MAP * 127.0.0.1:%d" % resolve_to)
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        browsers.append(b)
        return b

    yield launch
    for b in browsers:
        b.close()
    pw.stop()


def shot(page, name):
    """Save a full-page screenshot for the README."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


# ---------------------------------------------------------------- virtual boards


@pytest.fixture(scope="session")
def app_bundle(tmp_path_factory):
    """The working tree's app bundle, built once per session."""
    return build.build(out_dir=tmp_path_factory.mktemp("dist"))


class Board:
    """A virtual board: `tools/perch.py sim` in its own process group, on free ports."""

    def __init__(self, root, world=None, heap="512k", env=None, http_port=None):
        self.root = Path(root)
        self.world = Path(world) if world else None
        self.heap = heap
        self.env = env or {}
        self.http_port = http_port or free_port()
        self.dns_port = free_port(socket.SOCK_DGRAM)
        self.url = "http://127.0.0.1:%d" % self.http_port
        self.logfile = self.root.parent / (self.root.name + ".log")
        self.proc = None

    def start(self, wait=True):
        cmd = [sys.executable, str(TOOLS / "perch.py"), "sim", "--root", str(self.root),
               "--http-port", str(self.http_port), "--dns-port", str(self.dns_port),
               "--heap", self.heap]
        if self.world:
            cmd += ["--world", str(self.world)]
        env = dict(os.environ, **self.env)
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def log(self):
        return self.logfile.read_text(errors="replace")

    def get(self, path, **kw):
        kw.setdefault("timeout", 10)
        return requests.get(self.url + path, **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 10)
        return requests.post(self.url + path, **kw)

    def patch(self, path, **kw):
        kw.setdefault("timeout", 10)
        return requests.patch(self.url + path, **kw)

    def status(self):
        r = self.get("/api/status")
        r.raise_for_status()
        return r.json()

    def wait_ready(self, timeout=30, since_uptime=None):
        """Wait until /api/status answers 200; return the status document."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("board exited %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                r = requests.get(self.url + "/api/status", timeout=2)
                if r.status_code == 200:
                    return r.json()
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError("board not ready in %d s:\n%s" % (timeout, self.log()[-4000:]))

    def board_pid(self):
        """The pid of the MicroPython process (the simulated chip) under the supervisor."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid), "micropython"],
                             capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else None

    def power_cut(self):
        """kill -9 the whole board, supervisor included; start() powers it on again."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        return self.proc.returncode if self.proc else None


def write_world(path, networks=(), **extra):
    doc = {"networks": list(networks), "sensors": {}}
    doc.update(extra)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)
    return path


@pytest.fixture
def board(tmp_path, app_bundle):
    """board(world=..., env=..., heap=..., config=..., start=True) -> a running Board."""
    boards = []

    def make(world=None, env=None, heap="512k", config=None, start=True, root=None,
             bundle=None):
        root = Path(root) if root else tmp_path / ("board%d" % len(boards))
        if not (root / "boot.py").exists():
            root.mkdir(parents=True, exist_ok=True)
            build.install_root(root, bundle or app_bundle, seed_config=config)
        if world is None:
            world = write_world(tmp_path / ("world%d.json" % len(boards)))
        b = Board(root, world=world, heap=heap, env=env)
        boards.append(b)
        return b.start() if start else b

    yield make
    for b in boards:
        b.stop()


# ---------------------------------------------------------------- broker (issue 4, MQTT)
# A private RabbitMQ node with the MQTT plugin, one per test session (per xdist worker):
# plain MQTT and a TLS listener whose self-signed certificate the fixture generates.


def self_signed_cert(folder):
    """A throwaway certificate and key for localhost and 127.0.0.1, in folder: (cert, key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    Path(folder).mkdir(parents=True, exist_ok=True)
    cert_path = Path(folder) / "cert.pem"
    key_path = Path(folder) / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A running private RabbitMQ node (tools/rabbit.py) with user `perch` / `perchpw`.

    .url(user=, password=, tls=) -> mqtt[s]:// URL; .stop() / .start() for outage tests;
    .mqtt_port, .tls_port, .cert (the TLS listener's self-signed certificate, PEM).
    """
    import rabbit

    if not rabbit.available():
        pytest.fail("rabbitmq-server is needed for the MQTT tests (make test installs it)")
    cert, key = self_signed_cert(tmp_path_factory.mktemp("broker-tls"))
    node = rabbit.Rabbit(tls_cert=(str(cert), str(key)))
    node.cert = cert
    node.user, node.password = "perch", "perchpw"
    try:
        node.start()
        node.add_user(node.user, node.password)
        yield node
    finally:
        node.cleanup()


@pytest.fixture
def live_broker(broker):
    """The session broker, started again if an outage test left it stopped."""
    broker.start()
    return broker
# ---------------------------------------------------------------- end of broker block
