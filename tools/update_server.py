"""Perch update server: a static directory of bundles plus a signed index.json.

index.json is {"signed": "<JSON text>", "signature": "<hex>"}; the signed text is
{"format": 1, "releases": [{"version", "file", "size", "sha256", "notes", "date"}, ...]} and
the signature is RSA-2048 PKCS#1 v1.5 over SHA-256 of that text's UTF-8 bytes, so any static
HTTP server or object store can serve the folder unchanged.

`serve` is a plain static server with Range support.  For tests it also answers
`/redirect/<n>/<path>` with n chained 302s ending at `/<path>`, and `/drop/<n>/<path>` by
cutting the connection after n bytes (Range requests there are served whole).
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))

import bundle  # noqa: E402

INDEX = "index.json"


def load_index(d: Path) -> dict:
    p = Path(d) / INDEX
    if not p.exists():
        return {"format": 1, "releases": []}
    doc = json.loads(p.read_text())
    return json.loads(doc["signed"])


def write_index(d: Path, index: dict, key_path=None) -> Path:
    signed = json.dumps(index, separators=(",", ":"), sort_keys=True)
    doc = {"signed": signed}
    if key_path:
        sig = bundle.sign_bytes(signed.encode(), bundle.load_private(key_path))
        doc["signature"] = sig.hex()
    p = Path(d) / INDEX
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, p)
    return p


def _semver(v: str):
    core, _, pre = v.partition("-")
    return tuple(int(x) for x in core.split(".")) + ((0, pre) if pre else (1, ""))


def release(d, bundle_path, key_path=None, notes: str = "", date: str | None = None) -> dict:
    """Copy a bundle into the update directory and re-sign index.json; returns the entry."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    data = Path(bundle_path).read_bytes()
    man, _, sig = bundle.read_manifest(data)
    if key_path and not sig:
        print(f"warning: {bundle_path} is unsigned", file=sys.stderr)
    version = man["version"]
    _semver(version)
    kind = man.get("type", "app")
    name = f"perch-{version}.bundle" if kind == "app" else f"perch-{kind}-{version}.bundle"
    dst = d / name
    if Path(bundle_path).resolve() != dst.resolve():
        shutil.copyfile(bundle_path, dst)
    entry = {
        "version": version,
        "type": kind,
        "file": name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "notes": notes,
        "date": date or datetime.date.today().isoformat(),
    }
    index = load_index(d)
    rels = [r for r in index["releases"] if not (r["version"] == version
                                                   and r.get("type", "app") == kind)]
    rels.append(entry)
    rels.sort(key=lambda r: _semver(r["version"]), reverse=True)
    index["releases"] = rels
    write_index(d, index, key_path)
    return entry


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    rate = 0  # bytes/s for file bodies; 0 = unlimited (tests slow it to watch progress)

    def copyfile(self, source, outputfile):
        if not self.rate:
            return super().copyfile(source, outputfile)
        chunk = max(1024, self.rate // 20)
        while True:
            buf = source.read(chunk)
            if not buf:
                return
            outputfile.write(buf)
            time.sleep(len(buf) / self.rate)

    def log_message(self, fmt, *args):  # quiet: tests read the board's log, not ours
        if os.environ.get("PERCH_SERVE_VERBOSE"):
            super().log_message(fmt, *args)

    def do_GET(self):  # noqa: N802
        m = re.match(r"^/redirect/(\d+)(/.*)$", self.path)
        if m:
            n = int(m.group(1))
            loc = m.group(2) if n <= 1 else f"/redirect/{n - 1}{m.group(2)}"
            self.send_response(302)
            self.send_header("Location", loc)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        rng = self.headers.get("Range")
        m = re.match(r"^/drop/(\d+)(/.*)$", self.path)
        if m:
            # test hook: a plain GET is cut after n bytes; a Range GET is served normally
            self.path = m.group(2)
            if not rng:
                return self._send_cut(int(m.group(1)))
        path = Path(self.translate_path(self.path))
        if not rng or not path.is_file():
            return super().do_GET()
        m = re.match(r"bytes=(\d+)-(\d*)$", rng.strip())
        size = path.stat().st_size
        if not m or int(m.group(1)) >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left:
                chunk = f.read(min(65536, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)


    def _send_cut(self, n):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return super().do_GET()
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:n])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(d, port=0, host="127.0.0.1", rate=0) -> Server:
    d = str(Path(d).resolve())
    cls = type("RateHandler", (Handler,), {"rate": rate}) if rate else Handler

    def handler(*a, **kw):
        return cls(*a, directory=d, **kw)

    return Server((host, port), handler)


def serve_in_thread(d, port=0, rate=0, tls=None) -> tuple[Server, str]:
    """Start a server on a background thread; returns (server, base URL).

    tls: (certfile, keyfile) to serve HTTPS."""
    srv = make_server(d, port, rate=rate)
    scheme = "http"
    if tls:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "%s://127.0.0.1:%d" % (scheme, srv.server_address[1])


def serve(d, port=8000, host="127.0.0.1") -> int:
    srv = make_server(d, port, host)
    print(f"serving {Path(d).resolve()} on http://{host}:{srv.server_address[1]}/", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0
