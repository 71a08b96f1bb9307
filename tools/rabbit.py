#!/usr/bin/env python3
"""Start and stop a private RabbitMQ node with the MQTT plugin, for tests and `make run`.

The node lives in its own temp folder (owned by user `rabbitmq`, as Debian's scripts expect),
with its own node name, config, enabled-plugins file, mnesia dir, log dir, feature-flags file
and Erlang cookie, and listens on free loopback ports, so it never touches a system node.

    python tools/rabbit.py start [--dir DIR] [--user U --password P]   # prints env lines
    python tools/rabbit.py stop --dir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

RABBIT_BIN = "/usr/lib/rabbitmq/bin"
SERVER = os.path.join(RABBIT_BIN, "rabbitmq-server")
CTL = os.path.join(RABBIT_BIN, "rabbitmqctl")
RUN_USER = "rabbitmq"


class RabbitError(RuntimeError):
    pass


def available() -> bool:
    """True when Debian's rabbitmq-server is installed and we can run it as its user."""
    if not os.path.exists(SERVER):
        return False
    try:
        pwd.getpwnam(RUN_USER)
    except KeyError:
        return False
    return os.geteuid() == 0 or pwd.getpwuid(os.geteuid()).pw_name == RUN_USER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mqtt_answers(port: int, host: str = "127.0.0.1", timeout: float = 2.0,
                 tls: bool = False) -> bool:
    """Send an anonymous CONNECT and wait for a CONNACK: the MQTT plugin is really up."""
    pkt = b"\x10\x14\x00\x04MQTT\x04\x02\x00\x3c\x00\x08perchchk"
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            s = raw
            if tls:
                import ssl

                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(raw)
            s.sendall(pkt)
            resp = s.recv(4)
            s.close()
            return len(resp) >= 2 and resp[0] == 0x20
    except OSError:
        return False


class Rabbit:
    """One private node. `start()`, `stop()`, `add_user()`; ports stay fixed across restarts."""

    def __init__(self, base: str | None = None, tls_cert: tuple[str, str] | None = None,
                 name: str | None = None):
        """base: the node's folder (default: a new temp folder); user rabbitmq must be able
        to reach it, so it should not sit inside a private (0700) folder of another user."""
        self.own_base = base is None
        self.base = base or tempfile.mkdtemp(prefix="perch-rabbit-")
        self.node = name or f"perch{uuid.uuid4().hex[:8]}@localhost"
        self.mqtt_port = free_port()
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.tls_port = free_port() if tls_cert else None
        self.tls_cert = tls_cert
        self.proc: subprocess.Popen | None = None
        self._prepare()

    # -- files ---------------------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return os.path.join(self.base, *parts)

    def _prepare(self) -> None:
        for d in ("mnesia", "log", "home"):
            os.makedirs(self._path(d), exist_ok=True)
        conf = [
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.mqtt_port}",
            "mqtt.allow_anonymous = true",
            "mqtt.vhost = /",
            "mqtt.exchange = amq.topic",
            "loopback_users = none",
            "log.file.level = info",
            "log.console = false",
        ]
        if self.tls_cert:
            cert, key = self.tls_cert
            shutil.copy(cert, self._path("cert.pem"))
            shutil.copy(key, self._path("key.pem"))
            conf += [
                f"mqtt.listeners.ssl.default = 127.0.0.1:{self.tls_port}",
                f"ssl_options.cacertfile = {self._path('cert.pem')}",
                f"ssl_options.certfile = {self._path('cert.pem')}",
                f"ssl_options.keyfile = {self._path('key.pem')}",
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
            ]
        with open(self._path("rabbitmq.conf"), "w") as f:
            f.write("\n".join(conf) + "\n")
        with open(self._path("enabled_plugins"), "w") as f:
            f.write("[rabbitmq_mqtt].\n")
        if os.geteuid() == 0:
            ent = pwd.getpwnam(RUN_USER)
            for root, _dirs, files in os.walk(self.base):
                os.chown(root, ent.pw_uid, ent.pw_gid)
                for n in files:
                    os.chown(os.path.join(root, n), ent.pw_uid, ent.pw_gid)

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        e.update(
            HOME=self._path("home"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_USE_LONGNAME="false",
            RABBITMQ_CONFIG_FILE=self._path("rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=self._path("enabled_plugins"),
            RABBITMQ_MNESIA_BASE=self._path("mnesia"),
            RABBITMQ_LOG_BASE=self._path("log"),
            RABBITMQ_FEATURE_FLAGS_FILE=self._path("feature_flags"),
            RABBITMQ_PID_FILE=self._path("rabbit.pid"),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_PLUGINS_EXPAND_DIR=self._path("plugins-expand"),
            RABBITMQ_CONF_ENV_FILE=self._path("rabbitmq-env.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=self._path("advanced.config"),
        )
        return e

    def _as_user(self) -> dict:
        if os.geteuid() != 0:
            return {}
        ent = pwd.getpwnam(RUN_USER)
        return {"user": ent.pw_uid, "group": ent.pw_gid, "extra_groups": []}

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        out = open(self._path("log", "server.out"), "ab")
        self.proc = subprocess.Popen(
            [SERVER], env=self.env(), cwd=self.base, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, **self._as_user())
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RabbitError(f"rabbitmq-server exited {self.proc.returncode}; "
                                  f"see {self._path('log')}")
            if mqtt_answers(self.mqtt_port, timeout=1.0):
                if self.tls_port is None or mqtt_answers(self.tls_port, tls=True):
                    return
            time.sleep(0.2)
        self.stop()
        raise RabbitError(f"MQTT did not answer within {timeout:.0f} s; "
                          f"see {self._path('log')}")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node: SIGTERM to the whole process group (beam, erl_child_setup...)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # the script is gone; wait for the rest of its process group (beam, erl_child_setup)
        # too, so that a restart or a measurement does not compete with a VM shutting down
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        # epmd may outlive the node; it is shared and harmless, but the node's port must be
        # free before a restart on the same port.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and mqtt_answers(self.mqtt_port, timeout=0.3):
            time.sleep(0.1)
        self.proc = None

    def ctl(self, *args: str, check: bool = True) -> str:
        r = subprocess.run([CTL, "-n", self.node, *args], env=self.env(), cwd=self.base,
                           capture_output=True, text=True, timeout=60, **self._as_user())
        if check and r.returncode != 0:
            raise RabbitError(f"rabbitmqctl {args[0]} failed: {r.stderr.strip() or r.stdout}")
        return r.stdout

    def add_user(self, user: str, password: str, vhost: str = "/") -> None:
        if vhost != "/":
            self.ctl("add_vhost", vhost, check=False)
        self.ctl("add_user", user, password)
        self.ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        if vhost != "/":
            # the MQTT plugin publishes to amq.topic of the user's vhost
            pass

    def cleanup(self) -> None:
        self.stop()
        if self.own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def url(self, user: str | None = None, password: str | None = None,
            tls: bool = False) -> str:
        cred = ""
        if user is not None:
            cred = user + (f":{password}" if password is not None else "") + "@"
        if tls:
            return f"mqtts://{cred}127.0.0.1:{self.tls_port}"
        return f"mqtt://{cred}127.0.0.1:{self.mqtt_port}"

    def describe(self) -> dict:
        return {"base": self.base, "node": self.node, "mqtt_port": self.mqtt_port,
                "tls_port": self.tls_port, "pid": self.proc.pid if self.proc else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", required=True)
    st = sub.add_parser("start", help="start a private node; prints its description as JSON")
    st.add_argument("--user", help="create this MQTT user (vhost:user is fine)")
    st.add_argument("--password", default="")
    sp = sub.add_parser("stop", help="stop a node started by `start`")
    sp.add_argument("--dir", required=True, help="the node's folder (`base` from start)")
    args = ap.parse_args(argv)
    if not available():
        print("rabbitmq-server is not available (install Debian's rabbitmq-server; run as "
              "root or as user rabbitmq)", file=sys.stderr)
        return 2
    if args.verb == "start":
        r = Rabbit()
        r.start()
        if args.user:
            vhost, _, name = args.user.rpartition(":")
            r.add_user(name if vhost else args.user, args.password, vhost or "/")
        # detach: the node keeps running after we exit; `stop --dir` ends it
        with open(os.path.join(r.base, "node.json"), "w") as f:
            json.dump(r.describe(), f)
        print(json.dumps(r.describe()))
        return 0
    with open(os.path.join(args.dir, "node.json")) as f:
        info = json.load(f)
    try:
        os.killpg(info["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    for _ in range(300):
        try:
            os.killpg(info["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    shutil.rmtree(args.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
