"""Page templates: the build compiles lib/perch/pages.html into pages.bin, and the device
streams its blocks with the slots filled, escaped once, whatever the nesting."""

import hashlib
import json
import re

import pytest

import build
import bundle


def decode(data):
    """pages.bin -> one list per block: text pieces (str) and slot numbers (int)."""
    first = int.from_bytes(data[:2], "little")
    blocks = []
    for i in range(first // 2):
        pos = int.from_bytes(data[2 * i : 2 * i + 2], "little")
        n = int.from_bytes(data[pos : pos + 2], "little")
        pos += 2
        parts = []
        while True:
            parts.append(data[pos : pos + n].decode())
            pos += n
            if data[pos] == 255:
                break
            parts.append(data[pos])
            n = int.from_bytes(data[pos + 1 : pos + 3], "little")
            pos += 3
        blocks.append(parts)
    return blocks


def esc(s):
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#39;")):
        s = s.replace(a, b)
    return s


def block_numbers():
    text = re.sub(r"<!--(?!#).*?-->", "", (build.LIB / "perch" / "pages.html").read_text(),
                  flags=re.S)
    return {name: i for i, name in enumerate(re.findall(r"<!--#(\w+)", text))}


def test_compiler_cuts_blocks_at_slots(tmp_path):
    src = tmp_path / "p.html"
    src.write_text("<!-- notes -->\n<!--#one a b-->\n  <p>{{a}}\n  and {{b}}{{a}}</p>\n"
                   "<ul>\n<li>x</li>\n<!--#two-->\n<i>é</i>\n")
    (tmp_path / "m.py").write_text("_B_TWO = const(1)\n")
    assert decode(build.compile_pages(src, tmp_path)) == [
        ["<p>", 0, " and ", 1, "", 0, "</p><ul><li>x</li>"], ["<i>é</i>"]]


@pytest.mark.parametrize("text, module", [
    ("<!--#one a-->{{b}}", ""),  # a slot that is not declared
    ("<!--#one a b-->{{a}}", ""),  # a declared slot that is never used
    ("<!--#one-->x<!--#two-->y", "_B_TWO = const(0)\n"),  # code and template disagree
    ("<!--#one-->x", "_B_GONE = const(1)\n"),
])
def test_compiler_refuses_mismatches(tmp_path, text, module):
    src = tmp_path / "p.html"
    src.write_text(text)
    (tmp_path / "m.py").write_text(module)
    with pytest.raises(bundle.BundleError):
        build.compile_pages(src, tmp_path)


def test_the_device_streams_what_the_build_wrote(app_bundle, tmp_path, mpy):
    root = tmp_path / "root"
    build.install_root(root, app_bundle)
    blocks = decode((root / "app" / "a" / "perch" / "pages.bin").read_bytes())
    num = block_numbers()
    nasty = "<b>&\"'</b> Café ☕"

    def ref(b, vals=()):
        out = ""
        for p in blocks[b]:
            out += p if isinstance(p, str) else vals[p]
        return out

    lock = ref(num["lock"], [esc(nasty)])
    want = (ref(num["net"], [esc(nasty), " checked", "-50", "4", "▂", "", lock])
            + esc(nasty) + "7" + ref(num["firmware_js"]))
    assert len(blocks[num["firmware_js"]][0].encode()) > 1024  # streamed in several pieces
    code = """
import json
from perch import pages
nasty = %r
v = [(%d, (nasty, b" checked", -50, 4, "\u2582", None, (%d, (nasty,)))), [nasty, 7, None, False],
     "", (%d,)]
out = []
for c in pages.stream(v):
    out.append(c if isinstance(c, str) else str(bytes(c), "utf-8"))
print(json.dumps("".join(out)))
""" % (nasty, num["net"], num["lock"], num["firmware_js"])
    r = mpy(code, path=[root / "app" / "a"])
    assert r.returncode == 0, r.err
    assert json.loads(r.out.splitlines()[-1]) == want


def test_status_page_around_a_block(app_bundle, tmp_path, mpy):
    root = tmp_path / "root"
    build.install_root(root, app_bundle)
    code = """
import json
from perch import pages

class Ctx:
    device_id = "perch-0a0b0c"
    cfg = {"name": "<Greenhouse>"}
    def snapshot(self):
        return {"name": "<Greenhouse>", "device_id": self.device_id, "version": "1.0.0",
                "previous_version": None, "uptime_s": 12, "mem": {"free": 4096}, "mode": "sta",
                "ota": {"state": "idle", "last_error": None},
                "wifi": {"ssid": "Home & Co", "ip": "10.0.0.9", "rssi": -61},
                "mqtt": {"state": "up", "broker": None, "sent": 0, "queued": 3, "dropped": 0,
                         "last_error": None}}

out = []
for c in pages.status_page(Ctx()):
    out.append(c if isinstance(c, str) else str(bytes(c), "utf-8"))
print(json.dumps("".join(out)))
"""
    r = mpy(code, path=[root / "app" / "a"])
    assert r.returncode == 0, r.err
    page = json.loads(r.out.splitlines()[-1])
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</script></body></html>")
    assert "<title>Status · perch-0a0b0c</title>" in page
    assert "<header><b>&lt;Greenhouse&gt;</b>" in page
    assert '<td id="ssid">Home &amp; Co</td>' in page and '<td id="sent">0</td>' in page
    assert '<td id="uptime_s">12 s</td>' in page and '<td id="rssi">-61 dBm</td>' in page
    assert '<td id="previous_version">none</td>' in page


def test_factory_image_reads_its_frozen_page_files(tmp_path, mpy):
    # No slot on the filesystem (a board running only the frozen factory image): pages.py,
    # imported here from lib/ where no pages.bin exists, reads the copy that
    # firmware/manifest.py freezes (build/frozen/perch_assets.py).
    frozen = build.frozen_assets()
    files = dict(build.assets())
    code = """
import hashlib, binascii
from perch import pages
print(binascii.hexlify(hashlib.sha256(pages._read(0, -1)).digest()).decode())
r = pages.stylesheet()
print(binascii.hexlify(hashlib.sha256(r.body).digest()).decode(), r.headers["Content-Encoding"])
"""
    r = mpy(code, path=[frozen.parent])
    assert r.returncode == 0, r.err
    assert not (build.LIB / "perch" / "pages.bin").exists()
    assert r.out.split() == [hashlib.sha256(files["perch/pages.bin"]).hexdigest(),
                             hashlib.sha256(files["perch/style.css.gz"]).hexdigest(), "gzip"]
