"""OTA figures: live heap during 1 MB and 4 MB uploads, upload throughput beside a raw
socket->file copy in MicroPython, signature verification time. The 1.5 MB upload at the
smallest heap is in bench_heap.py, in the worst case (AP, DNS and MQTT running)."""

from __future__ import annotations

import os
import socket
import subprocess
import time

from conftest import MICROPYTHON, free_port
from ota_helpers import Release, wait_for

# Raw baseline: accept one connection and copy its bytes to a file with a fixed buffer, the
# least work an upload can do. It prints the byte count when the peer closes.
RAW_COPY = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(socket.getaddrinfo('127.0.0.1', %d)[0][-1])
s.listen(1)
print('ready')
c, _ = s.accept()
buf = bytearray(2048)  # twice perch.unpack.Reader's 1 KB copies: a baseline no slower than ours
mv = memoryview(buf)
n = 0
with open('raw.bin', 'wb') as f:
    while True:
        k = c.readinto(buf)
        if not k:
            break
        f.write(mv[:k])
        n += k
c.send(b'%%d' %% n)
c.close()
"""

VERIFY = """
import time, hashlib
from perch import bundle
key = {"n": "%s"}
sig = bytes.fromhex("%s")
d = hashlib.sha256(b"manifest").digest()
t = time.ticks_us()
for _ in range(%d):
    assert bundle.rsa_verify(d, sig, [key])
print((time.ticks_diff(time.ticks_us(), t)) / %d / 1000)
"""


def _raw_copy_rate(bench, data: bytes) -> float:
    port = free_port()
    env = dict(os.environ, MICROPYPATH=".frozen")
    proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=160k", "-c", RAW_COPY % port],
                            cwd=bench.tmp, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = s.recv(64)
        dt = time.monotonic() - t0
        assert int(got) == len(data)
        return len(data) / dt
    finally:
        proc.kill()
        proc.wait()


def _board(bench, rel, heap):
    b = bench.board(heap=heap, config=rel.config())
    # both sizes measured in the same settled state: the first second after boot still holds
    # the boot-time trial check's code (perch.ota_trial, ~2 KB), gone within 500 ms
    time.sleep(1.5)
    return b


def _upload(b, data: bytes, version: str) -> tuple[float, int]:
    t0 = time.monotonic()
    r = b.post("/api/ota/upload", data=data, timeout=300)
    dt = time.monotonic() - t0
    r.raise_for_status()
    peak = b.get("/api/ota").json()["peak_alloc"]
    wait_for(lambda: b.status()["version"] == version, 60, "reboot into " + version, b)
    return dt, peak


def rows(bench):
    rel = Release(bench.tmp / "ota")
    mb = 1024 * 1024
    one = rel.make("1.1.0", filler=1 * mb, name="one.bundle").read_bytes()
    four = rel.make("1.2.0", filler=4 * mb, name="four.bundle").read_bytes()

    b = _board(bench, rel, "512k")
    _, peak1 = _upload(b, one, "1.1.0")
    b.stop()
    b = _board(bench, rel, "512k")
    dt4, peak4 = _upload(b, four, "1.2.0")
    b.stop()
    up_rate = len(four) / dt4
    raw_rate = _raw_copy_rate(bench, four)

    # signature check: MicroPython pow() on the board's code vs CPython's pow() for the same
    import bundle as hostbundle

    sig = hostbundle.sign_bytes(b"manifest", rel.key)
    n = int(rel.cfg_key["n"], 16)
    reps = 5
    code = VERIFY % (rel.cfg_key["n"], sig.hex(), reps, reps)
    p = subprocess.run([MICROPYTHON, "-c", code], cwd=bench.tmp, capture_output=True,
                       text=True, env=dict(os.environ, MICROPYPATH="%s:.frozen"
                                           % bench.app_dir), timeout=120)
    mp_ms = float(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else float("nan")
    s = int.from_bytes(sig, "big")
    t0 = time.perf_counter()
    for _ in range(reps):
        pow(s, 65537, n)
    cpy_ms = (time.perf_counter() - t0) / reps * 1000

    return [
        ("OTA upload live heap peak, 1 MB bundle", peak1 / 1024, "KB", "= 4 MB figure ±2 KB",
         "4 MB: %.1f KB" % (peak4 / 1024)),
        ("OTA upload live heap peak, 4 MB bundle", peak4 / 1024, "KB",
         "±2 KB of 1 MB (%s)" % ("ok" if abs(peak4 - peak1) <= 2048 else "OVER"),
         "1 MB: %.1f KB" % (peak1 / 1024)),
        ("OTA upload throughput (4 MB, verify+hash+write)", up_rate / 1024, "KB/s",
         ">= 0.5x raw (%.2fx)" % (up_rate / raw_rate),
         "raw socket->file copy: %.0f KB/s" % (raw_rate / 1024)),
        ("RSA-2048 signature check (pow e=65537)", mp_ms, "ms", "-",
         "CPython pow(): %.2f ms" % cpy_ms),
    ]
