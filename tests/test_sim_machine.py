"""The virtual board's `machine` module, run under the MicroPython Unix port."""

from __future__ import annotations

import shutil
import socket

import pytest

from sim_helpers import BOARD, MPError, Shell, board_env, run_mp, write_world

# ESP32 port values
PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5

# A stand-in sensor-models module: machine must route ADC and I2C traffic through whatever
# _sensors.py the board has; this one keeps a register file so writes can be read back.
FAKE_SENSORS = """
regs = {0x76: bytearray(range(256))}
def adc_read(pin):
    return pin * 10
def i2c_scan():
    return list(regs)
def i2c_readfrom_mem(addr, reg, n):
    return bytes(regs[addr][reg:reg + n])
def i2c_writeto_mem(addr, reg, buf):
    regs[addr][reg:reg + len(buf)] = buf
"""


@pytest.fixture
def bare_board(tmp_path):
    """The board modules without any sensor models (no _sensors.py, no dht.py)."""
    d = tmp_path / "board"
    d.mkdir()
    for f in BOARD.glob("*.py"):
        if f.name not in ("_sensors.py", "dht.py"):
            shutil.copy(f, d)
    return d


@pytest.fixture
def world(tmp_path):
    path = tmp_path / "world.json"
    write_world(path, {"sensors": {"adc": {"34": 2048, "35": "junk"}, "pins": {"4": 1}}})
    return path


@pytest.fixture
def ctl():
    """A UDP socket standing in for the supervisor's control port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(20)
    yield s
    s.close()


def shell(tmp_path, board, world=None, **env):
    sh = Shell(tmp_path, board_env(world, board_dir=board, **env))
    sh.ex("import machine")
    return sh


@pytest.fixture
def mp(tmp_path, bare_board, world):
    sh = shell(tmp_path, bare_board, world, PERCH_SIM_MAC="240ac4abcdef")
    yield sh
    sh.close()


def test_unique_id_is_the_mac(mp):
    assert mp.ev("machine.unique_id()") == bytes.fromhex("240ac4abcdef")


@pytest.mark.parametrize(
    "cause,code",
    [
        ("PWRON_RESET", PWRON_RESET),
        ("SOFT_RESET", SOFT_RESET),
        ("WDT_RESET", WDT_RESET),
        ("HARD_RESET", HARD_RESET),
        ("DEEPSLEEP_RESET", DEEPSLEEP_RESET),
        ("", PWRON_RESET),
        ("garbage", PWRON_RESET),
    ],
)
def test_reset_cause(tmp_path, cause, code):
    env = board_env(PERCH_SIM_RESET_CAUSE=cause)
    r = run_mp("import machine; print(machine.reset_cause(), machine.WDT_RESET)", tmp_path, env)
    assert r.stdout.split() == [str(code), str(WDT_RESET)], r.stderr


def test_reset_exits_75_through_except_exception(tmp_path, ctl):
    code = (
        "import machine\n"
        "print('before reset')\n"
        "try:\n"
        "    machine.reset()\n"
        "except Exception:\n"
        "    print('swallowed')\n"
        "print('after')\n"
    )
    env = board_env(PERCH_SIM_CTL=ctl.getsockname()[1])
    r = run_mp(code, tmp_path, env)
    assert r.returncode == 75
    assert r.stdout.splitlines() == ["before reset"]
    # the supervisor hears of it first, so it can force the reset if the exit is swallowed
    assert ctl.recv(64) == b"reset"


def test_soft_reset_also_reboots(tmp_path):
    r = run_mp("import machine; machine.soft_reset()", tmp_path, board_env())
    assert r.returncode == 75


def test_wdt_talks_to_supervisor(tmp_path, bare_board, ctl):
    sh = shell(tmp_path, bare_board, PERCH_SIM_CTL=ctl.getsockname()[1])
    try:
        sh.ex("w = machine.WDT(timeout=1234)")
        assert ctl.recv(64) == b"wdt 1234"
        sh.ex("w.feed(); w.feed()")
        assert [ctl.recv(64), ctl.recv(64)] == [b"feed", b"feed"]
        sh.ex("machine.WDT(0, 3000)")  # positional, as the port's argument parser allows
        assert ctl.recv(64) == b"wdt 3000"
        for bad in ("machine.WDT(timeout=0)", "machine.WDT(id=1)"):
            with pytest.raises(MPError) as e:
                sh.ex(bad)
            assert e.value.kind == "ValueError"
    finally:
        sh.close()


def test_wdt_without_supervisor_is_harmless(mp):
    mp.ex("w = machine.WDT(timeout=1000); w.feed()")


def test_pins(mp):
    mp.ex("P = machine.Pin; led = P(2, P.OUT, value=1)")
    assert mp.ev("led.value()") == 1
    mp.ex("led.off()")
    assert mp.ev("led()") == 0
    mp.ex("led(1)")
    assert mp.ev("P(2).value()") == 1  # one state per GPIO, shared by every Pin object
    assert mp.ev("P(4, P.IN).value()") == 1  # from the world
    assert mp.ev("P(5, P.IN, P.PULL_UP).value()") == 1
    assert mp.ev("P(5, P.IN, P.PULL_DOWN).value()") == 0
    assert mp.ev("P(5).pull()") == 1
    assert mp.ev("P(2).mode()") == 3
    for bad, msg in (("P(34, P.OUT)", "input"), ("P(20)", "invalid pin"), ("P(2, 99)", "mode")):
        with pytest.raises(MPError) as e:
            mp.ex(bad)
        assert e.value.kind == "ValueError" and msg in e.value.msg


def test_adc_from_world(mp):
    mp.ex("a = machine.ADC(machine.Pin(34))")
    assert mp.ev("a.read()") == 2048
    assert mp.ev("a.read_u16()") == (2048 << 4) | (2048 >> 8)
    assert mp.ev("a.read_uv()") == 2048 * 1100000 // 4095
    mp.ex("a.atten(machine.ADC.ATTN_11DB)")
    assert mp.ev("a.read_uv()") == 2048 * 3900000 // 4095
    mp.ex("a.width(machine.ADC.WIDTH_10BIT)")
    assert mp.ev("a.read()") == 512
    assert mp.ev("machine.ADC(35).read()") == 0  # unreadable world value
    assert mp.ev("machine.ADC(36).read()") == 0  # nothing wired
    for bad in ("machine.ADC(1)", "a.atten(9)", "a.width(16)"):
        with pytest.raises(MPError) as e:
            mp.ex(bad)
        assert e.value.kind == "ValueError"


def test_empty_i2c_bus_nacks(mp):
    mp.ex("i2c = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21))")
    assert mp.ev("i2c.scan()") == []
    for call in ("i2c.readfrom_mem(0x76, 0xD0, 1)", "i2c.writeto(0x76, b'x')"):
        with pytest.raises(MPError) as e:
            mp.ex(call)
        assert e.value.kind == "OSError" and "ENODEV" in e.value.msg


def test_adc_and_i2c_use_sensor_models(tmp_path, bare_board):
    (bare_board / "_sensors.py").write_text(FAKE_SENSORS)
    sh = shell(tmp_path, bare_board)
    try:
        assert sh.ev("machine.ADC(33).read()") == 330
        sh.ex("i2c = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21))")
        assert sh.ev("i2c.scan()") == [0x76]
        assert sh.ev("i2c.readfrom_mem(0x76, 0xD0, 2)") == b"\xd0\xd1"
        sh.ex("i2c.writeto_mem(0x76, 0xF4, b'\\x27')")
        assert sh.ev("i2c.readfrom_mem(0x76, 0xF4, 1)") == b"\x27"
        sh.ex("buf = bytearray(3); i2c.readfrom_mem_into(0x76, 0x10, buf)")
        assert sh.ev("bytes(buf)") == b"\x10\x11\x12"
        # plain write sets the register pointer; plain read continues from it
        assert sh.ev("i2c.writeto(0x76, b'\\x20')") == 1
        assert sh.ev("i2c.readfrom(0x76, 2)") == b"\x20\x21"
        with pytest.raises(MPError) as e:
            sh.ex("i2c.readfrom_mem(0x77, 0, 1)")
        assert "ENODEV" in e.value.msg
    finally:
        sh.close()


def test_rtc_follows_host_clock(mp):
    mp.ex("import time; d = machine.RTC().datetime(); t = time.gmtime()")
    assert len(mp.ev("d")) == 8
    # seconds between the RTC reading and the host's UTC clock
    lag = "time.mktime(t[:6] + (0, 0)) - time.mktime((d[0], d[1], d[2], d[4], d[5], d[6], 0, 0))"
    assert 0 <= mp.ev(lag) <= 5
    mp.ex("machine.RTC().datetime((2030, 1, 2, 0, 3, 4, 5, 0)); d = machine.RTC().datetime()")
    assert mp.ev("d[:6]") == (2030, 1, 2, 2, 3, 4)  # weekday computed: a Wednesday


def test_freq(mp):
    assert mp.ev("machine.freq()") == 160000000
    mp.ex("machine.freq(240000000)")
    assert mp.ev("machine.freq()") == 240000000
    with pytest.raises(MPError) as e:
        mp.ex("machine.freq(123)")
    assert e.value.kind == "ValueError"
