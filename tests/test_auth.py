"""Admin password: hashing and lockout under the Unix port; login, Basic, sessions, lockout
and the cross-site check on a virtual board."""

import json
import re

import pytest
import requests

from wifi_helpers import HOME, wait_for, wait_mode, world

HASHING = """
import asyncio, json, time
from perch import auth

async def main():
    h1 = await auth.hash_password("hunter2 ü")
    h2 = await auth.hash_password("hunter2 ü")
    out = {"h1": h1, "h2": h2,
           "ok": await auth.check_password("hunter2 ü", h1),
           "bad": await auth.check_password("hunter2", h1),
           "garbage": await auth.check_password("x", "sha256$zz$00$00"),
           "now_ok": await auth.check_password("pw", auth.hash_password_now("pw")),
           "is_hash": [auth.is_hash(h1), auth.is_hash("plain")]}
    g = auth.Guard()
    for _ in range(4):
        g.failed()
    out["after4"] = g.lock_left_s()
    g.failed()
    out["after5"] = g.lock_left_s()
    g.locked_at = time.ticks_add(time.ticks_ms(), -60001)
    out["after60s"] = g.lock_left_s()
    out["fails_reset"] = g.fails
    t = g.new_session()
    out["session"] = [g.valid_session(t), g.valid_session("nope")]
    for _ in range(20):
        g.new_session()
    out["sessions_bounded"] = len(g.sessions)
    own = lambda h: h in ("127.0.0.1:8080", "perch-abcdef.local")
    out["csrf"] = [
        auth.cross_site("POST", {"Origin": "http://evil.example"}, own),
        auth.cross_site("POST", {"Origin": "http://127.0.0.1:8080"}, own),
        auth.cross_site("POST", {"Origin": "null"}, own),
        auth.cross_site("DELETE", {"Referer": "http://evil.example/x"}, own),
        auth.cross_site("PATCH", {"Referer": "http://perch-abcdef.local/settings"}, own),
        auth.cross_site("POST", {}, own),
        auth.cross_site("GET", {"Origin": "http://evil.example"}, own),
    ]
    print(json.dumps(out))

asyncio.run(main())
"""


def test_hash_lockout_sessions_csrf_under_micropython(mpy):
    res = mpy(HASHING)
    assert res.returncode == 0, res.err
    d = res.json()
    assert re.fullmatch(r"sha256\$4096\$[0-9a-f]{32}\$[0-9a-f]{64}", d["h1"])
    assert d["h1"] != d["h2"]  # salted
    assert d["ok"] is True and d["bad"] is False and d["garbage"] is False
    assert d["now_ok"] is True and d["is_hash"] == [True, False]
    assert d["after4"] == 0 and d["after5"] == 60
    assert d["after60s"] == 0 and d["fails_reset"] == 0
    assert d["session"] == [True, False] and d["sessions_bounded"] == 8
    assert d["csrf"] == [True, False, True, True, False, False, False]


PW = "Corr3ct horse ü"


@pytest.fixture
def locked(board, tmp_path):
    b = board(world=world(tmp_path, HOME))
    wait_mode(b, "ap")
    # First setup: the portal is open, and setting the password needs no login.
    r = b.patch("/api/config", json={"admin": {"password": PW}})
    assert r.status_code == 200
    assert r.json()["admin"]["password"] == {"set": True}
    return b


def test_password_stored_as_salted_hash(locked):
    stored = json.loads((locked.root / "config.json").read_text())["admin"]["password"]
    assert re.fullmatch(r"sha256\$4096\$[0-9a-f]{32}\$[0-9a-f]{64}", stored)
    assert PW not in (locked.root / "config.json").read_text()
    assert PW not in locked.log()


def test_every_route_needs_auth_except_login_and_captive(locked):
    b = locked
    for path in ("/api/status", "/api/wifi", "/api/wifi/networks", "/api/config", "/api/logs"):
        r = b.get(path)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"] == 'Basic realm="perch"'
    for path in ("/", "/wifi", "/settings", "/logs"):
        r = b.get(path, allow_redirects=False)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login?next="), path
    for method, path in (("POST", "/api/wifi/scan"), ("POST", "/api/reboot"),
                         ("POST", "/api/factory-reset"), ("DELETE", "/api/wifi/Home"),
                         ("PATCH", "/api/config")):
        r = requests.request(method, b.url + path, timeout=5)
        assert r.status_code == 401, path
    assert b.get("/login").status_code == 200
    assert b.get("/style.css").status_code == 200
    # Captive detection still works for a phone that has not logged in.
    r = requests.get(b.url + "/generate_204", headers={"Host": "connectivitycheck.gstatic.com"},
                     allow_redirects=False, timeout=5)
    assert r.status_code == 302


def test_basic_auth_for_scripts(locked):
    b = locked
    assert b.get("/api/status", auth=("admin", PW)).status_code == 200
    assert b.get("/api/status", auth=("admin", PW)).status_code == 200  # fast path
    assert b.get("/api/status", auth=("root", PW)).status_code == 401
    assert b.get("/api/status", auth=("admin", "wrong")).status_code == 401
    r = b.patch("/api/config", json={"name": "Shed"}, auth=("admin", PW))
    assert r.status_code == 200 and r.json()["name"] == "Shed"


def test_login_session_cookie_and_logout(locked):
    b = locked
    s = requests.Session()
    r = s.get(b.url + "/settings", timeout=5)
    assert r.url.endswith("/login?next=/settings") and "Admin password" in r.text
    r = s.post(b.url + "/login", data={"password": "nope", "next": "/settings"}, timeout=5)
    assert r.status_code == 401 and "4 attempts left" in r.text
    r = s.post(b.url + "/login", data={"password": PW, "next": "/settings"},
               allow_redirects=False, timeout=5)
    assert r.status_code == 303 and r.headers["Location"] == "/settings"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert s.get(b.url + "/settings", timeout=5).status_code == 200
    assert s.get(b.url + "/api/status", timeout=5).status_code == 200
    # Open redirects are refused.
    r = s.post(b.url + "/login", data={"password": PW, "next": "//evil.example/"},
               allow_redirects=False, timeout=5)
    assert r.headers["Location"] == "/"
    s.post(b.url + "/logout", timeout=5)
    assert s.get(b.url + "/api/status", timeout=5).status_code == 401


def test_five_bad_logins_lock_login(locked):
    b = locked
    for i in range(4):
        r = b.post("/login", data={"password": "bad%d" % i})
        assert r.status_code == 401
    r = b.post("/login", data={"password": "bad4"})
    assert r.status_code == 429 and "locked for 60 s" in r.text
    # Even the right password is refused while locked, by form and by Basic.
    r = b.post("/login", data={"password": PW}, allow_redirects=False)
    assert r.status_code == 429
    r = b.get("/api/status", auth=("admin", PW))
    assert r.status_code == 429 and "locked" in r.json()["error"]
    assert int(r.headers["Retry-After"]) > 50
    assert "failed login" in b.log()


def test_csrf_origin_check(locked):
    b = locked
    auth = ("admin", PW)
    r = b.post("/api/wifi/scan", auth=auth, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["error"]
    r = b.patch("/api/config", json={"name": "pwned"}, auth=auth,
                headers={"Referer": "http://evil.example/page"})
    assert r.status_code == 403
    assert b.get("/api/config", auth=auth).json()["name"] != "pwned"
    origin = "http://127.0.0.1:%d" % b.http_port
    r = b.post("/api/wifi/scan", auth=auth, headers={"Origin": origin})
    assert r.status_code == 202
    dev = b.get("/api/status", auth=auth).json()["device_id"]
    r = b.post("/api/wifi/scan", auth=auth, headers={"Origin": "http://%s.local" % dev})
    assert r.status_code == 202
    # Login CSRF is refused too, even with no password set... here with one set.
    r = b.post("/login", data={"password": PW}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403


def test_csrf_applies_during_first_setup(board, tmp_path):
    b = board(world=world(tmp_path, HOME))
    r = b.post("/api/wifi", json={"ssid": "Home", "password": "secret123"},
               headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = b.post("/api/wifi", json={"ssid": "Home", "password": "secret123"},
               headers={"Origin": "http://192.168.4.1"})
    assert r.status_code == 202


def test_settings_form_sets_password_and_logs_in_the_setter(board, tmp_path):
    b = board(world=world(tmp_path, HOME))
    s = requests.Session()
    r = s.post(b.url + "/settings/admin", data={"password": "abc", "password2": "abd"},
               timeout=5)
    assert r.status_code == 400 and "differ" in r.text
    r = s.post(b.url + "/settings/admin", data={"password": PW, "password2": PW}, timeout=5)
    assert r.status_code == 200 and r.url.endswith("/settings?done=admin")
    assert "Admin password set" in r.text
    assert s.get(b.url + "/api/status", timeout=5).status_code == 200
    assert b.get("/api/status").status_code == 401
    assert b.get("/api/status", auth=("admin", PW)).status_code == 200


def test_env_seeded_password_is_hashed(board, tmp_path):
    b = board(world=world(tmp_path, HOME), env={"PERCH_ADMIN_PASSWORD": "from-env-pw"},
              start=False)
    b.start(wait=False)

    def answering():
        try:
            return b.get("/api/status", timeout=2).status_code
        except requests.RequestException:
            return None

    assert wait_for(answering, 30, what="board up") == 401
    assert b.get("/api/status", auth=("admin", "from-env-pw")).status_code == 200
