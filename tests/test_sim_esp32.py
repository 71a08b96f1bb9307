"""The virtual board's `esp32` module (OTA partitions under .flash/, the bootloader's
pending-verify rollback) and what the board modules load only on use, under the Unix port."""

from __future__ import annotations

import json

from sim_helpers import board_env, run_mp

IMAGE = "b'\\xe9' + bytes(4095)"


def boot(root, code):
    """One boot of the board: a fresh MicroPython process on `root`; returns its stdout."""
    r = run_mp("import esp32\n" + code, root, board_env())
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def otadata(root):
    return json.loads((root / ".flash" / "otadata.json").read_text())


def test_partitions_and_blocks(tmp_path):
    out = boot(tmp_path, (
        "P = esp32.Partition\n"
        "run = P(P.RUNNING); nxt = run.get_next_update()\n"
        "print(run.info()[4], nxt.info()[4], nxt.info()[1:4], nxt.ioctl(4, 0), nxt.ioctl(5, 0))\n"
        "print([p.info()[4] for p in P.find(P.TYPE_APP)], P.find(P.TYPE_DATA))\n"
        "nxt.writeblocks(1, b'abc')\n"
        "buf = bytearray(6); nxt.readblocks(1, buf); print(bytes(buf))\n"
        "nxt.writeblocks(1, b'xy', 1); nxt.readblocks(1, buf); print(bytes(buf))\n"
        "try:\n    nxt.writeblocks(384, b'x')\nexcept OSError as e:\n    print('EINVAL', e)\n"
    ))
    lines = out.splitlines()
    assert lines[0] == "ota_0 ota_1 (17, 1638400, 1572864) 384 4096"
    assert lines[1] == "['ota_0', 'ota_1'] []"
    # a whole-block write erases the rest of the block; never written flash reads erased
    assert lines[2] == repr(b"abc\xff\xff\xff")
    assert lines[3] == repr(b"axy\xff\xff\xff")
    assert lines[4].startswith("EINVAL")
    data = (tmp_path / ".flash" / "ota_1.bin").read_bytes()
    assert len(data) == 2 * 4096 and data[4096:4099] == b"axy" and set(data[4099:]) == {0xFF}


def test_no_otadata_means_ota_0_and_no_file(tmp_path):
    assert boot(tmp_path, "print(esp32._running)").strip() == "ota_0"
    boot(tmp_path, "esp32.Partition.mark_app_valid_cancel_rollback()")
    assert not (tmp_path / ".flash" / "otadata.json").exists()


def test_set_boot_refuses_a_non_image(tmp_path):
    out = boot(tmp_path, (
        "p = esp32.Partition('ota_1')\n"
        "try:\n    p.set_boot()\nexcept OSError as e:\n    print(e)\n"
    ))
    assert out.strip() == "-5379"


def test_new_image_is_pending_then_rolled_back_unless_confirmed(tmp_path):
    boot(tmp_path, "p = esp32.Partition('ota_1'); p.writeblocks(0, %s); p.set_boot()" % IMAGE)
    assert otadata(tmp_path)["state"] == "new"
    # first boot of the new image: pending verify; a re-import in the same boot is no boot
    out = boot(tmp_path, (
        "import sys; del sys.modules['esp32']; import esp32\n"
        "print(esp32._running, esp32.Partition(esp32.Partition.RUNNING).info()[4])\n"
    ))
    assert out.split() == ["ota_1", "ota_1"]
    assert otadata(tmp_path)["state"] == "pending_verify"
    # reset before confirmation: the bootloader goes back to the previous image
    assert boot(tmp_path, "print(esp32._running)").strip() == "ota_0"
    assert otadata(tmp_path)["state"] == "aborted" and otadata(tmp_path)["boot"] == "ota_0"


def test_confirmed_image_stays(tmp_path):
    boot(tmp_path, "p = esp32.Partition('ota_1'); p.writeblocks(0, %s); p.set_boot()" % IMAGE)
    boot(tmp_path, "esp32.Partition.mark_app_valid_cancel_rollback()")
    assert otadata(tmp_path)["state"] == "valid"
    assert boot(tmp_path, "print(esp32._running)").strip() == "ota_1"
    assert boot(tmp_path, "print(esp32._running)").strip() == "ota_1"


def test_rare_parts_are_dropped_after_use(tmp_path):
    # on the chip these modules are C and cost no heap: their rarely used parts load for the
    # call and are dropped from sys.modules after
    out = boot(tmp_path, (
        "import sys, machine, network\n"
        "sta = network.WLAN(network.STA_IF); sta.active(True); sta.config(txpower=8)\n"
        "p = esp32.Partition(esp32.Partition.RUNNING); p.info()\n"
        "machine.RTC().datetime()\n"
        "print(network.AUTH_WEP, network.country(), sta.config('txpower'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('_')))\n"
    ))
    lines = out.splitlines()
    assert lines[0] == "1 01 8"
    assert lines[1] == "[]"
