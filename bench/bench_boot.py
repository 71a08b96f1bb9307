"""Foundation figures: boot time, heap, smallest heap, /api/status rate, bundle size."""

import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import requests

from conftest import MICROPYTHON, REPO, free_port

HEAP = "512k"

HELLO = """
import asyncio
from microdot import Microdot
app = Microdot()

@app.get('/')
async def index(request):
    return 'Hello, world!'

asyncio.run(app.start_server(port=%d))
"""


def wait_200(url, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return time.monotonic()
        except requests.RequestException:
            time.sleep(0.005)
    return None


def hello_world(bench, heap):
    """A bare microdot hello-world under the same MicroPython, from the same .mpy files."""
    port = free_port()
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % bench.app_dir)
    t0 = time.monotonic()
    proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=" + heap, "-c", HELLO % port],
                            env=env, cwd=bench.tmp)
    t1 = wait_200("http://127.0.0.1:%d/" % port, proc)
    return proc, port, (t1 - t0) if t1 else None


def rate(port, path, n=600, threads=2):
    """Requests per second of one-shot HTTP/1.1 requests from `threads` clients."""
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
           % (path, port)).encode()
    errors = []

    def client(count):
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(req)
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if not data.startswith(b"HTTP/1.") or b" 200 " not in data[:16]:
                    errors.append(data[:40])

    ts = [threading.Thread(target=client, args=(n // threads,)) for _ in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.monotonic() - t0
    if errors:
        raise RuntimeError("%d bad answers from %s, e.g. %r" % (len(errors), path, errors[0]))
    return n / dt


def host_modules_heap(cwd):
    """Heap that the virtual board's network, machine, esp32 and socket take: C on the chip."""
    sys.path.insert(0, str(REPO / "tools" / "sim"))
    import runner

    code = ("import gc\ngc.collect()\na = gc.mem_alloc()\nimport network, machine, esp32, socket"
            "\ngc.collect()\nprint(gc.mem_alloc() - a)")
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % runner.rom_dir())
    env.pop("PERCH_SIM_WORLD", None)
    # In a scratch folder: the simulated esp32 keeps its flash files in the current folder.
    out = subprocess.run([MICROPYTHON, "-X", "heapsize=" + HEAP, "-c", code], env=env, cwd=cwd,
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


def rows(bench):
    out = []
    # Start -> first 200, median of 5, for the board and for a bare hello-world.
    times = []
    for _ in range(5):
        b = bench.board(heap=HEAP, start=False)
        t0 = time.monotonic()
        b.start(wait=False)
        b.wait_ready()
        times.append(time.monotonic() - t0)
        b.stop()
    hello_times = []
    for _ in range(5):
        proc, _, dt = hello_world(bench, HEAP)
        proc.kill()
        proc.wait()
        hello_times.append(dt)
    out.append(("process start -> first /api/status 200 (median of 5)",
                statistics.median(times), "s", "< 1.5 s",
                "hello-world %.3g s" % statistics.median(hello_times)))

    b = bench.board(heap=HEAP)
    status = b.get("/api/status?gc=1").json()
    host = host_modules_heap(bench.tmp)
    out.append(("heap after boot (gc.mem_alloc)", status["mem"]["alloc"] // 1024, "KB",
                "-  (smallest heaps: bench_heap rows)",
                "of which %d KB are the virtual board's host modules (C on the chip)"
                % (host // 1024)))

    # /api/status rate beside hello-world, same heap, same client.
    ours = rate(b.http_port, "/api/status")
    b.stop()
    proc, port, _ = hello_world(bench, HEAP)
    try:
        base = rate(port, "/")
    finally:
        proc.kill()
        proc.wait()
    out.append(("/api/status requests per second (heap %s)" % HEAP, ours, "req/s",
                ">= 0.8 x hello-world", "hello-world %.0f req/s, ratio %.2f"
                % (base, ours / base)))

    size = bench.bundle.stat().st_size
    out.append(("app bundle (our .mpy + microdot + umqtt)", size // 1024, "KB", "<= 150 KB", ""))
    return out


if __name__ == "__main__":
    sys.exit("run through bench/run.py")
