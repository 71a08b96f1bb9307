"""The virtual board's `network` and `socket` modules, run under the MicroPython Unix port."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from sim_helpers import MPError, Shell, board_env, write_world

# ESP32 port values
STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP = 1000, 1001, 1010
STAT_BEACON_TIMEOUT, STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD = 200, 201, 202

HOME = {"ssid": "home", "password": "secret123", "rssi": -50, "channel": 6}
CAFE = {"ssid": "Café ☕", "rssi": -70, "channel": 1, "security": "open"}
GHOST = {"ssid": "ghost", "password": "boo12345", "rssi": -40, "channel": 11, "hidden": True}
OLD = {"ssid": "old", "password": "wep-key", "rssi": -85, "security": "wep"}
# a connect attempt takes long enough that the status right after connect() is CONNECTING
WORLD = {"networks": [HOME, CAFE, GHOST, OLD], "connect_ms": 400, "scan_ms": 150}


@pytest.fixture
def world(tmp_path):
    path = tmp_path / "world.json"
    write_world(path, WORLD)
    return path


@pytest.fixture
def mp(tmp_path, world):
    sh = Shell(tmp_path, board_env(world, PERCH_SIM_MAC="240ac4123456"))
    sh.ex("import network, socket, time; sta = network.WLAN(network.STA_IF)")
    yield sh
    sh.close()


def connect(mp, ssid, key):
    """connect() and sample the status in the same breath; returns (first, final) status."""
    mp.ex(f"sta.active(True); sta.connect({ssid!r}, {key!r}); first = sta.status()")
    final = mp.until("sta.status()", lambda v: v != STAT_CONNECTING)
    return mp.ev("first"), final


def test_station_starts_idle_and_inactive(mp):
    assert mp.ev("sta.active()") is False
    assert mp.ev("sta.status()") == STAT_IDLE
    assert mp.ev("sta.isconnected()") is False
    with pytest.raises(MPError) as e:
        mp.ex("sta.connect('home', 'secret123')")
    assert e.value.kind == "OSError" and "Not Started" in e.value.msg


def test_connect_success(mp):
    first, final = connect(mp, "home", "secret123")
    assert first == STAT_CONNECTING
    assert final == STAT_GOT_IP
    assert mp.ev("sta.isconnected()") is True
    assert mp.ev("sta.ifconfig()")[0] == "127.0.0.1"
    assert mp.ev("sta.ipconfig('addr4')")[0] == "127.0.0.1"
    assert mp.ev("sta.status('rssi')") == -50
    assert mp.ev("sta.config('ssid')") == "home"
    assert mp.ev("sta.config('channel')") == 6


def test_connect_reports_connecting_then_no_ip_before_done(mp):
    mp.ex("sta.active(True); sta.connect('home', 'secret123'); c = sta.isconnected()")
    mp.ex("ip = sta.ifconfig()[0]")
    assert mp.ev("c") is False
    assert mp.ev("ip") == "0.0.0.0"


def test_wrong_password(mp):
    first, final = connect(mp, "home", "not-the-password")
    assert (first, final) == (STAT_CONNECTING, STAT_WRONG_PASSWORD)
    assert mp.ev("sta.isconnected()") is False
    assert mp.ev("sta.ifconfig()")[0] == "0.0.0.0"
    with pytest.raises(MPError):
        mp.ev("sta.status('rssi')")


def test_ssid_not_found(mp):
    assert connect(mp, "nobody-here", "whatever") == (STAT_CONNECTING, STAT_NO_AP_FOUND)
    assert mp.ev("sta.isconnected()") is False


def test_open_network_and_utf8_ssid(mp):
    # an open AP lets any station in, whatever key it was given
    assert connect(mp, "Café ☕", "typed-anyway")[1] == STAT_GOT_IP


def test_hidden_network_joins_by_name(mp):
    assert connect(mp, "ghost", "boo12345")[1] == STAT_GOT_IP


def test_ap_vanishes_while_connected_then_returns(mp, world):
    assert connect(mp, "home", "secret123")[1] == STAT_GOT_IP
    write_world(world, dict(WORLD, networks=[CAFE]))
    assert mp.until("sta.isconnected()", False) is False
    assert mp.ev("sta.status()") == STAT_BEACON_TIMEOUT
    assert mp.ev("sta.ifconfig()")[0] == "0.0.0.0"
    # the chip keeps trying the network it was told to join, and gets back on by itself
    write_world(world, WORLD)
    assert mp.until("sta.status()", STAT_GOT_IP) == STAT_GOT_IP


def test_password_change_drops_station(mp, world):
    assert connect(mp, "home", "secret123")[1] == STAT_GOT_IP
    write_world(world, dict(WORLD, networks=[dict(HOME, password="rotated!!"), CAFE]))
    assert mp.until("sta.isconnected()", False) is False
    assert mp.ev("sta.status()") == STAT_WRONG_PASSWORD
    assert connect(mp, "home", "rotated!!")[1] == STAT_GOT_IP


def test_disconnect_and_deactivate(mp):
    assert connect(mp, "home", "secret123")[1] == STAT_GOT_IP
    mp.ex("sta.disconnect()")
    assert mp.ev("sta.isconnected()") is False
    assert mp.ev("sta.status()") == STAT_IDLE
    assert connect(mp, "home", "secret123")[1] == STAT_GOT_IP
    mp.ex("sta.active(False)")
    assert mp.ev("sta.isconnected()") is False


def test_scan_lists_the_world(mp):
    with pytest.raises(MPError):
        mp.ev("sta.scan()")  # the radio is off
    mp.ex("sta.active(True); t0 = time.ticks_ms(); nets = sta.scan()")
    mp.ex("took = time.ticks_diff(time.ticks_ms(), t0)")
    nets = mp.ev("nets")
    assert [n[0] for n in nets] == [b"home", "Café ☕".encode(), b"", b"old"]
    for ssid, bssid, channel, rssi, _auth, hidden in nets:
        assert isinstance(ssid, bytes) and isinstance(bssid, bytes) and len(bssid) == 6
        assert isinstance(channel, int) and isinstance(rssi, int) and isinstance(hidden, bool)
    assert len({n[1] for n in nets}) == 4
    home, cafe, ghost, old = nets
    assert home[2:] == (6, -50, 3, False)  # WPA2-PSK by default when it has a password
    assert cafe[2:] == (1, -70, 0, False)  # open
    assert ghost[2:] == (11, -40, 3, True)  # hidden: no SSID on the air, as on the chip
    assert old[4] == 1  # WEP
    # scan() blocks its caller for the whole sweep, like the ESP32's
    assert mp.ev("took") >= WORLD["scan_ms"]


def test_scan_follows_world_changes(mp, world):
    mp.ex("sta.active(True)")
    write_world(world, dict(WORLD, networks=[dict(HOME, rssi=-30)]))
    assert mp.ev("[(n[0], n[3]) for n in sta.scan()]") == [(b"home", -30)]
    write_world(world, dict(WORLD, networks=[]))
    assert mp.ev("sta.scan()") == []


def test_hostile_world_keeps_radio_running(mp, world):
    mp.ex("sta.active(True)")
    assert len(mp.ev("sta.scan()")) == 4
    world.write_text('{"networks": [{"ssid": "half')  # caught mid-write: last good world stays
    assert len(mp.ev("sta.scan()")) == 4
    write_world(world, {"networks": [42, {"no": "ssid"}, {"ssid": 7}, HOME], "scan_ms": "x"})
    assert [n[0] for n in mp.ev("sta.scan()")] == [b"home"]
    world.unlink()
    assert mp.ev("sta.scan()") == []


def test_hostile_calls_raise_clear_errors(mp):
    mp.ex("sta.active(True)")
    with pytest.raises(MPError) as e:
        mp.ex("sta.connect(123, 'x')")
    assert e.value.kind == "TypeError" and "ssid" in e.value.msg
    with pytest.raises(MPError) as e:
        mp.ex("sta.connect('x' * 33, 'x')")
    assert e.value.kind == "ValueError" and "ssid" in e.value.msg
    with pytest.raises(MPError) as e:
        mp.ex("network.WLAN(7)")
    assert e.value.kind == "ValueError"
    with pytest.raises(MPError) as e:
        mp.ev("sta.config('bogus')")
    assert "unknown config param" in e.value.msg
    with pytest.raises(MPError):
        mp.ev("sta.config('password')")  # write-only on the chip too


def test_access_point(mp):
    mp.ex("ap = network.WLAN(network.AP_IF); ap.active(True)")
    assert mp.ev("ap.active()") is True
    assert mp.ev("ap.ifconfig()") == ("192.168.4.1", "255.255.255.0", "192.168.4.1", "192.168.4.1")
    mp.ex("ap.config(essid='perch-123456', authmode=network.AUTH_OPEN, max_clients=4)")
    assert mp.ev("ap.config('essid')") == "perch-123456"
    assert mp.ev("ap.config('ssid')") == "perch-123456"
    assert mp.ev("ap.config('authmode')") == 0
    with pytest.raises(MPError) as e:
        mp.ex("ap.config(essid='other', authmode=network.AUTH_WPA2_PSK, password='short')")
    assert e.value.kind == "OSError" and "Password" in e.value.msg
    assert mp.ev("ap.config('essid')") == "perch-123456"  # rejected as a whole
    mp.ex("ap.config(authmode=network.AUTH_WPA2_PSK, password='long-enough')")
    assert mp.ev("ap.config('authmode')") == 3
    # one radio: every WLAN(AP_IF) is the same interface; the AP MAC is the base MAC + 1
    assert mp.ev("network.WLAN(network.AP_IF).config('essid')") == "perch-123456"
    assert mp.ev("sta.config('mac')") == bytes.fromhex("240ac4123456")
    assert mp.ev("ap.config('mac')") == bytes.fromhex("240ac4123457")
    assert mp.ev("ap.isconnected()") is False
    # the station stays down in AP mode
    assert mp.ev("sta.isconnected()") is False


def test_hostname(mp):
    assert mp.ev("network.hostname()") == "mpy-esp32"
    mp.ex("network.hostname('perch-123456')")
    assert mp.ev("network.hostname()") == "perch-123456"
    assert mp.ev("sta.config('hostname')") == "perch-123456"
    with pytest.raises(MPError):
        mp.ex("network.hostname('x' * 40)")


def test_outbound_fails_while_station_down(mp):
    with pytest.raises(MPError) as e:
        mp.ev("socket.getaddrinfo('127.0.0.1', 80)")
    assert e.value.kind == "OSError" and e.value.msg == "-2"
    with pytest.raises(MPError):
        mp.ev("socket.getaddrinfo('example.com', 80)")
    # listening stays possible, as for the portal in AP mode
    assert mp.ev("len(socket.getaddrinfo('0.0.0.0', 80)) > 0")
    assert connect(mp, "home", "secret123")[1] == STAT_GOT_IP
    assert mp.ev("len(socket.getaddrinfo('127.0.0.1', 80)) > 0")
    mp.ex("sta.disconnect()")
    with pytest.raises(MPError):
        mp.ev("socket.getaddrinfo('127.0.0.1', 80)")


def test_socket_module_is_complete(mp):
    # the shadow re-exports every name of the built-in module
    assert mp.ev("'board' in socket.__file__")
    assert mp.ev("type(socket._real).__name__") == "module"
    assert mp.ev("socket._real is not socket")
    names = mp.ev("[n for n in dir(socket._real) if not n.startswith('_')]")
    assert "socket" in names and "getaddrinfo" in names
    missing = mp.ev(f"[n for n in {names!r} if not hasattr(socket, n)]")
    assert missing == []
    assert mp.ev("socket.socket is socket._real.socket")


def test_socket_reimport_still_finds_builtin(mp):
    # once the shim owns the u-name, a fresh import must find the built-in by hiding itself
    mp.ex("import sys; del sys.modules['socket']; import socket as s2")
    assert mp.ev("s2 is not socket and not hasattr(s2._real, '__file__')")
    assert mp.ev("s2.socket is socket._real.socket")
    assert mp.ev("'board' in s2.__file__")


def test_usocket_users_are_gated_too(mp):
    # umqtt.simple does `import usocket as socket`
    mp.ex("import usocket")
    assert mp.ev("usocket.socket is socket._real.socket")
    with pytest.raises(MPError) as e:
        mp.ev("usocket.getaddrinfo('127.0.0.1', 1883)")
    assert e.value.msg == "-2"
    assert connect(mp, "home", "secret123")[1] == STAT_GOT_IP
    assert mp.ev("len(usocket.getaddrinfo('127.0.0.1', 1883)) > 0")


ASYNC = """
import asyncio
served = []
async def hello(r, w):
    w.write(b'hello')
    await w.drain()
    w.close()
    await w.wait_closed()
    served.append(1)
async def fetch(port):
    r, w = await asyncio.open_connection('127.0.0.1', port)
    d = await r.read(5)
    w.close()
    return d
async def serve(port, outside):
    srv = await asyncio.start_server(hello, '0.0.0.0', port)
    try:
        if outside:
            while not served:
                await asyncio.sleep_ms(10)
            return 'served'
        return await fetch(port)
    finally:
        srv.close()
        await srv.wait_closed()
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_hello(port, got):
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                got.append(c.recv(5))
                return
        except OSError:
            time.sleep(0.02)


def test_asyncio_server_binds_while_station_down(mp):
    # microdot and the captive DNS listen through asyncio in AP mode, with no station link
    mp.block(ASYNC)
    port = _free_port()
    got = []
    t = threading.Thread(target=_get_hello, args=(port, got))
    t.start()
    assert mp.ev(f"asyncio.run(serve({port}, True))") == "served"
    t.join()
    assert got == [b"hello"]


def test_asyncio_client_follows_station(mp):
    mp.block(ASYNC)
    port = _free_port()
    with pytest.raises(MPError) as e:
        mp.ev(f"asyncio.run(serve({port}, False))")  # cannot even resolve the address
    assert (e.value.kind, e.value.msg) == ("OSError", "-2")
    assert connect(mp, "home", "secret123")[1] == STAT_GOT_IP
    assert mp.ev(f"asyncio.run(serve({port}, False))") == b"hello"


def test_static_address(mp):
    assert connect(mp, "home", "secret123")[1] == STAT_GOT_IP
    assert mp.ev("sta.ipconfig('dhcp4')") is True
    mp.ex("sta.ifconfig(('10.0.0.5', '255.255.255.0', '10.0.0.1', '10.0.0.1'))")
    assert mp.ev("sta.ifconfig()")[0] == "10.0.0.5"
    assert mp.ev("sta.ipconfig('addr4')") == ("10.0.0.5", "255.255.255.0")
    assert mp.ev("sta.ipconfig('dhcp4')") is False
    mp.ex("sta.disconnect()")
    assert mp.ev("sta.ifconfig()")[0] == "0.0.0.0"
    with pytest.raises(MPError) as e:
        mp.ex("sta.ifconfig(('10.0.0.5',))")
    assert e.value.kind == "ValueError"


def test_pinned_bssid(mp):
    mp.ex("sta.active(True); nets = sta.scan()")
    home_bssid = mp.ev("nets[0][1]")
    mp.ex(f"sta.connect('home', 'secret123', bssid={home_bssid!r})")
    assert mp.until("sta.status()", lambda v: v != STAT_CONNECTING) == STAT_GOT_IP
    mp.ex("sta.connect('home', 'secret123', bssid=b'\\x02\\x00\\x00\\x00\\x00\\x01')")
    assert mp.until("sta.status()", lambda v: v != STAT_CONNECTING) == STAT_NO_AP_FOUND


def test_same_world_rewritten_keeps_link(mp, world):
    assert connect(mp, "home", "secret123")[1] == STAT_GOT_IP
    write_world(world, WORLD)  # a new file, the same content
    assert mp.ev("sta.isconnected()") is True
    assert mp.ev("sta.status('rssi')") == -50


def test_config_values_and_defaults(mp):
    mp.ex("ap = network.WLAN(network.AP_IF)")
    assert mp.ev("ap.config('essid')") == "ESP_123457"  # the AP's MAC: base + 1
    assert mp.ev("[sta.config(p) for p in ('channel', 'hidden', 'txpower', 'pm')]") == [
        1, False, 20, 1]
    mp.ex("sta.config(txpower=8, pm=network.WLAN.PM_NONE, dhcp_hostname='perch-x')")
    assert mp.ev("(sta.config('txpower'), sta.config('pm'), network.hostname())") == (
        8, 0, "perch-x")
    with pytest.raises(MPError) as e:
        mp.ex("ap.config(channel=15)")
    assert e.value.kind == "OSError"
    with pytest.raises(MPError) as e:
        mp.ex("sta.config(bogus=1)")
    assert e.value.kind == "ValueError"
    assert mp.ev("(network.country(), network.ipconfig('dns'), network.STAT_IDLE)") == (
        "01", "127.0.0.1", STAT_IDLE)
