"""Firmware-image bundles on a virtual board: written to the next OTA partition, checked,
booted pending-verify, then confirmed by the health check, or reverted by the (simulated)
bootloader when the board resets before confirmation."""

from __future__ import annotations

import json
import os
import struct

import pytest

from conftest import write_world
from ota_helpers import Release, wait_for, wait_version

LAB = {"ssid": "lab", "password": "otatest-pass", "rssi": -50, "channel": 6,
       "security": "WPA2", "hidden": False}


def app_image(version: str, size: int = 300_000, magic: int = 0xABCD5432) -> bytes:
    head = bytes([0xE9, 3, 2, 0x20]) + bytes(20)  # esp_image_header_t
    seg = struct.pack("<II", 0x3F400020, 0x100)  # first segment header
    desc = struct.pack("<III4x", magic, 0, 0) + version.encode().ljust(32, b"\0")
    desc += b"micropython".ljust(32, b"\0")
    body = head + seg + desc
    return body + os.urandom(size - len(body))


@pytest.fixture(scope="module")
def rel(tmp_path_factory):
    return Release(tmp_path_factory.mktemp("fw"))


def fw_bundle(rel, version, image):
    import bundle

    return bundle.pack([("firmware.app-bin", image)], version, kind="firmware", key=rel.key)


def otadata(b):
    return json.loads((b.root / ".flash" / "otadata.json").read_text())


def start(board, rel, tmp_path, network_up):
    world = write_world(tmp_path / "fw-world.json", [LAB] if network_up else [])
    cfg = rel.config()
    cfg["wifi"] = {"networks": [{"ssid": "lab", "password": LAB["password"]}]}
    b = board(bundle=rel.make("1.0.0"), config=cfg, world=world,
              env={"PERCH_OTA_CONFIRM_S": "30"})
    wait_version(b, "1.0.0", confirmed=network_up)
    return b


def upload(b, data):
    return b.post("/api/ota/upload", data=data, timeout=60)


def test_install_pending_verify_confirm(board, rel, tmp_path):
    b = start(board, rel, tmp_path, network_up=True)
    assert b.get("/api/ota").json()["firmware"] == {"running": "ota_0", "next": "ota_1"}
    image = app_image("v1.29.0-perch")
    r = upload(b, fw_bundle(rel, "1.29.0", image))
    assert r.status_code == 200, r.text
    # boots the new image on trial; the health check passes and marks it valid
    doc = wait_for(lambda: (lambda d: d if d["firmware"]["running"] == "ota_1" and d["confirmed"]
                            else None)(b.get("/api/ota").json()), 40, "ota_1 confirmed", b)
    assert doc["firmware_pending"] is None
    assert otadata(b)["state"] == "valid" and otadata(b)["boot"] == "ota_1"
    written = (b.root / ".flash" / "ota_1.bin").read_bytes()
    assert written[: len(image)] == image
    assert len(written) % 4096 == 0 and set(written[len(image):]) <= {0xFF}
    assert "firmware image confirmed" in b.log()
    # a later reset keeps the confirmed image
    assert b.post("/api/reboot").status_code == 202
    wait_for(lambda: b.status()["uptime_s"] < 5 and b.get("/api/ota").json()["firmware"]
             ["running"] == "ota_1", 30, "reboot on ota_1", b)


def test_install_pending_verify_crash_reverts(board, rel, tmp_path):
    # no network in the world: the health check (Wi-Fi configured but down) cannot pass
    b = start(board, rel, tmp_path, network_up=False)
    r = upload(b, fw_bundle(rel, "1.30.0", app_image("v1.30.0")))
    assert r.status_code == 200, r.text
    doc = wait_for(lambda: (lambda d: d if d["firmware"]["running"] == "ota_1" else None)(
        b.get("/api/ota").json()), 40, "ota_1 pending", b)
    assert doc["firmware_pending"] == "1.30.0" and not doc["confirmed"]
    assert otadata(b)["state"] == "pending_verify"
    # crash (power cut) before confirmation: the bootloader goes back to ota_0
    b.power_cut()
    b.start()
    doc = wait_for(lambda: (lambda d: d if d["firmware"]["running"] == "ota_0" else None)(
        b.get("/api/ota").json()), 40, "revert to ota_0", b)
    assert "firmware 1.30.0 was not confirmed" in doc["rollback_reason"]
    assert otadata(b)["boot"] == "ota_0" and otadata(b)["state"] == "aborted"
    assert b.status()["version"] == "1.0.0"


def test_image_without_app_descriptor_is_refused(board, rel, tmp_path):
    b = start(board, rel, tmp_path, network_up=True)
    r = upload(b, fw_bundle(rel, "1.31.0", app_image("v1.31.0", magic=0x12345678)))
    assert r.status_code == 400 and "no app descriptor" in r.json()["error"]
    assert b.get("/api/ota").json()["firmware"]["running"] == "ota_0"
    assert not (b.root / ".flash" / "otadata.json").exists() or otadata(b)["boot"] == "ota_0"
    r = upload(b, fw_bundle(rel, "1.31.0", b"\x00" * 5000))
    assert r.status_code == 400 and "not an ESP32 app image" in r.json()["error"]
