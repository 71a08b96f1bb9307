"""First setup in headless Chromium at a phone viewport, as an end user does it: any URL
lands on the portal, a wrong password shows why, the right one shows the new address, then
the admin password locks the device and the login page lets the admin back in."""

from urllib.parse import urlsplit

import pytest

from conftest import PHONE, shot
from wifi_helpers import CAFE, GUEST, HOME, HOME_WEAK, wait_mode, world

ADMIN = "Greenhouse-admin 1"


@pytest.fixture
def portal(board, tmp_path):
    b = board(world=world(tmp_path, HOME, HOME_WEAK, CAFE, GUEST))
    wait_mode(b, "ap")
    return b


@pytest.fixture
def chromium(portal, launch_chromium):
    # Every name resolves to the board, as the captive DNS makes it on a phone.
    return launch_chromium(resolve_to=portal.http_port)


def test_first_setup_walkthrough(portal, chromium):
    b = portal
    own = "127.0.0.1:%d" % b.http_port
    ctx = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    hosts = set()
    page.on("request", lambda r: hosts.add(urlsplit(r.url).netloc))

    # 1. The phone's OS probes a well-known URL and lands on the portal.
    page.goto("http://connectivitycheck.gstatic.com/generate_204")
    assert page.url == "http://%s/" % own
    page.get_by_text("Café ☕ «Ü»").wait_for()
    labels = page.locator("ul#nets li label .grow").all_inner_texts()
    assert labels[:3] == ["Home", "Guest", "Café ☕ «Ü»"]
    shot(page, "01-portal.png")

    # 2. Pick the network, type a wrong password, see the reason.
    page.get_by_text("Café ☕ «Ü»").click()
    page.fill("#pw", "not-the-password")
    page.check("#show")
    assert page.get_attribute("#pw", "type") == "text"
    shot(page, "02-password.png")
    page.click("#connect")
    page.get_by_text("wrong password").wait_for(timeout=20_000)
    assert "Could not join Café ☕ «Ü»: wrong password." in page.inner_text("main")
    shot(page, "03-wrong-password.png")

    # 3. The right password: success with the new address and the .local name.
    page.fill("#pw", CAFE["password"])
    page.click("#connect")
    page.get_by_text("Connected").first.wait_for(timeout=20_000)
    dev = b.status()["device_id"]
    text = page.inner_text("main")
    assert "http://%s/" % own in text and "http://%s.local:%d/" % (dev, b.http_port) in text
    assert b.status()["mode"] == "ap+sta"
    shot(page, "04-connected.png")

    # 4. Set the admin password from the success page; the setter stays logged in.
    page.fill("input[name=password]", ADMIN)
    page.fill("input[name=password2]", ADMIN)
    page.get_by_role("button", name="Set admin password").click()
    page.wait_for_url("**/settings?done=admin")
    page.get_by_text("Admin password set").wait_for()
    shot(page, "05-settings.png")

    # 5. Anyone else must log in.
    other = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    p2 = other.new_page()
    p2.goto("http://%s/wifi" % own)
    assert "/login?next=/wifi" in p2.url
    p2.fill("input[name=password]", "wrong")
    p2.get_by_role("button", name="Log in").click()
    p2.get_by_text("Wrong password").wait_for()
    p2.fill("input[name=password]", ADMIN)
    shot(p2, "06-login.png")
    p2.get_by_role("button", name="Log in").click()
    p2.wait_for_url("**/wifi")
    p2.get_by_text("Saved networks").wait_for()
    shot(p2, "07-wifi-saved.png")
    # Nothing was fetched from anywhere but the device (and the probe URL it redirected).
    assert hosts <= {own, "connectivitycheck.gstatic.com"}
    other.close()
    ctx.close()


def test_setup_works_without_javascript(portal, chromium):
    ctx = chromium.new_context(viewport=PHONE, java_script_enabled=False)
    page = ctx.new_page()
    page.goto("http://captive.apple.com/hotspot-detect.html")
    page.get_by_text("Guest").click()
    page.click("#connect")
    # The result page refreshes itself with a Refresh header until the test is done.
    page.get_by_text("Connected").first.wait_for(timeout=20_000)
    assert "joined Guest" in page.inner_text("main")
    ctx.close()
