"""Telemetry goes quiet for an install (ctx.quiet): the MQTT link closes and the uplink's code
is dropped while an upload streams, sampling goes on into the outbox; after a failed install
the uplink comes back and the readings kept meanwhile arrive, in order, none lost."""

from __future__ import annotations

import socket
import time

from conftest import write_world
from lineparse import parse_line
from mqtt_helpers import LAB, Sub, wait_status
from ota_helpers import Release, wait_version


def sim_seqs(sub, did):
    return [f["seq"] for m, _, f, _ in (parse_line(p.decode())
                                         for p in sub.payloads("sensors/" + did)) if m == "sim"]


def test_upload_on_publishing_board_quiet_then_back(board, tmp_path, live_broker):
    rel = Release(tmp_path / "rel")
    good = rel.make("1.1.0").read_bytes()
    world = write_world(tmp_path / "world.json", [LAB])
    cfg = rel.config()
    cfg["wifi"] = {"networks": [{"ssid": LAB["ssid"], "password": LAB["password"]}]}
    b = board(bundle=rel.make("1.0.0"), config=cfg, world=world,
              env={"PERCH_MQTT_URL": live_broker.url(live_broker.user, live_broker.password),
                   "PERCH_TELEMETRY_INTERVAL_S": "1", "PERCH_TELEMETRY_SENSORS": '["sim"]',
                   "PERCH_MQTT_BACKOFF_MAX_S": "4", "PERCH_MQTT_TIMEOUT_S": "3",
                   "PERCH_OTA_CONFIRM_S": "10"})
    st = wait_status(b, lambda s: s["mqtt"]["state"] == "connected", 40, "MQTT connected")
    did = st["device_id"]
    sub = Sub(live_broker, ["sensors/" + did])
    try:
        sub.wait(lambda m: len(sim_seqs(sub, did)) >= 2, 30, "readings")
        # a bad upload, stalled half way: the board is quiet while it streams
        bad = bytearray(good)
        bad[-300] ^= 0x40
        s = socket.create_connection(("127.0.0.1", b.http_port), timeout=30)
        s.sendall(b"POST /api/ota/upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Content-Type: application/octet-stream\r\n\r\n" % len(bad))
        s.sendall(bad[:4096])
        st = wait_status(b, lambda s: s["mqtt"]["state"] == "quiet", 10, "quiet")
        q0 = st["mqtt"]["queued"]
        time.sleep(3)  # readings pile up in the outbox meanwhile
        st = b.status()
        assert st["mqtt"]["state"] == "quiet" and st["mqtt"]["queued"] >= q0 + 2, st["mqtt"]
        assert st["ota"]["state"] == "installing"
        last = max(sim_seqs(sub, did))
        s.sendall(bad[4096:])
        s.settimeout(30)
        answer = s.recv(4096)
        s.close()
        assert answer.startswith(b"HTTP/1.1 400") or answer.startswith(b"HTTP/1.0 400"), answer
        # the uplink is back and replays what was sampled while quiet, in order, none lost
        sub.wait(lambda m: max(sim_seqs(sub, did)) >= last + 6, 40, "readings again")
        seqs = sim_seqs(sub, did)
        assert sorted(set(seqs)) == list(range(min(seqs), max(seqs) + 1)), seqs
        firsts = [seqs.index(n) for n in sorted(set(seqs))]
        assert firsts == sorted(firsts), seqs  # first arrivals in sampling order
        wait_status(b, lambda s: s["mqtt"]["state"] == "connected"
                    and s["mqtt"]["dropped"] == 0, 20, "connected, nothing dropped")
        log = b.log()
        assert "quiet: uplink down for an install" in log
        # and a good upload to the publishing board installs
        r = b.post("/api/ota/upload", data=good, timeout=60)
        assert r.status_code == 200, r.text
        wait_version(b, "1.1.0")
    finally:
        sub.close()
