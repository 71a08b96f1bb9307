"""The virtual board boots the app: status, logs, config API, reboot and clean stop."""

import re
import time

from sim_helpers import BOARD


def test_status_reports_identity_and_version(board):
    b = board()
    s = b.status()
    assert re.fullmatch(r"perch-[0-9a-f]{6}", s["device_id"])
    assert s["version"] == "1.0.0"
    assert s["name"] == s["device_id"]
    for key in ("previous_version", "uptime_s", "mode", "wifi", "mqtt", "mem", "ota"):
        assert key in s
    assert set(s["mqtt"]) >= {"state", "broker", "queued", "sent", "dropped", "last_error"}
    assert set(s["ota"]) >= {"state", "progress", "last_error"}
    assert s["mem"]["free"] > 0 and s["mem"]["alloc"] > 0


def test_reboot_comes_back_with_uptime_reset(board):
    b = board()
    first = b.status()
    pid = b.board_pid()
    assert b.post("/api/reboot").status_code == 202
    # The same supervisor restarts a new MicroPython process on the same root.
    for _ in range(200):
        new = b.board_pid()
        if new and new != pid:
            break
        time.sleep(0.05)
    s = b.wait_ready()
    assert b.board_pid() != pid
    assert s["device_id"] == first["device_id"]
    assert s["uptime_s"] <= 1
    assert "rebooting" in b.log()


def test_sigterm_stops_cleanly(board):
    b = board()
    b.status()
    assert b.stop() == 0


def test_config_api_validates_and_hides_secrets(board):
    b = board()
    r = b.patch("/api/config", json={"mqtt": {"qos": 3}})
    assert r.status_code == 400
    assert r.json()["field"] == "mqtt.qos"
    r = b.patch("/api/config", data=b"{nope")
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = b.patch("/api/config", json={"name": "Greenhouse",
                                     "mqtt": {"url": "mqtt://greenhouse:s3cret-pw@10.0.0.2"}})
    assert r.status_code == 200
    assert "s3cret-pw" not in r.text
    assert b.get("/api/config").json()["name"] == "Greenhouse"
    assert b.status()["name"] == "Greenhouse"
    assert "s3cret-pw" not in b.get("/api/logs").text
    assert "s3cret-pw" not in b.log()


def test_logs_since_sequence(board):
    b = board()
    doc = b.get("/api/logs", params={"since": 0}).json()
    assert doc["lines"] and doc["last"] == doc["lines"][-1]["seq"]
    assert any("INFO app: started" in x["line"] for x in doc["lines"])
    later = b.get("/api/logs", params={"since": doc["last"]}).json()
    assert all(x["seq"] > doc["last"] for x in later["lines"])
    assert b.get("/api/logs", params={"since": "x"}).status_code == 400
    assert b.get("/api/reboot").status_code == 405 and b.post("/api/status").status_code == 405


def test_pages_are_served(board):
    b = board()
    r = b.get("/logs")
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    css = b.get("/style.css")
    assert css.headers["Content-Encoding"] == "gzip" and b"box-sizing" in css.content


def test_server_serves_again_after_a_memory_error_in_accept(mpy):
    # asyncio's accept loop ends on a MemoryError (a new connection's Stream or task): the
    # app closes its listening socket and serves again on the same port.
    code = """
import asyncio, json, socket
import asyncio.stream as st
from perch import app

class Web:
    server = None

class Guard:
    async def handle(r, w):
        w.write(b"ok")
        await w.drain()
        w.s.close()

class Start:
    def boot(ctx):
        pass

async def idle(ctx):
    pass

app.lazy = lambda name: Start
app._watch_loop = idle
ctx = app.Context()
ctx.cfg = {"http.port": 18099}
ctx.web = Web()
ctx.guard = Guard
fails = [1]
Stream = st.Stream

def stream(s, e={}):
    if e and fails:  # the server's (the client's has no peername)
        fails.pop()
        raise MemoryError
    return Stream(s, e)

st.Stream = stream
got = []

async def client():
    await asyncio.sleep_ms(50)
    first = ctx.web.server
    try:
        r, w = await asyncio.open_connection("0.0.0.0", 18099)
        got.append(await asyncio.wait_for_ms(r.read(10), 300))
    except Exception as e:
        got.append(type(e).__name__)
    await asyncio.sleep_ms(50)
    r, w = await asyncio.open_connection("0.0.0.0", 18099)
    got.append(await asyncio.wait_for_ms(r.read(10), 2000))
    got.append(ctx.web.server is not first)
    ctx.web.server.close()

async def main():
    asyncio.create_task(client())
    await app.run(ctx)

asyncio.run(main())
print(json.dumps([str(x) for x in got]))
"""
    r = mpy(code, path=[BOARD], env={"PERCH_SIM_WORLD": "/nonexistent"})
    assert r.returncode == 0, r.out + r.err
    assert "accept failed" in r.out
    assert r.json()[1:] == ["b'ok'", "True"]
