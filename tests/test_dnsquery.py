"""The uplink's DNS lookup with a deadline, under the Unix port, against a small DNS server
built with dnspython: an answer, NXDOMAIN, and a server that never answers."""

import socket
import threading

import dns.message
import dns.rcode
import dns.rrset
import pytest


class FakeDNS:
    def __init__(self, mode):
        self.mode = mode
        self.queries = 0
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.port = self.s.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                data, addr = self.s.recvfrom(512)
            except OSError:
                return
            self.queries += 1
            if self.mode == "silent":
                continue
            q = dns.message.from_wire(data)
            r = dns.message.make_response(q)
            if self.mode == "nxdomain":
                r.set_rcode(dns.rcode.NXDOMAIN)
            else:
                name = q.question[0].name
                r.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", "alias.example."))
                r.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "10.1.2.3"))
            self.s.sendto(r.to_wire(), addr)


@pytest.fixture
def fake_dns():
    made = []

    def make(mode):
        d = FakeDNS(mode)
        made.append(d)
        return d

    yield make
    for d in made:
        d.s.close()


def _resolve(mpy, port, host, timeout_ms):
    code = (
        "import asyncio, json\nfrom perch import dnsquery\n"
        "async def main():\n"
        "    try:\n"
        "        r = await dnsquery.resolve(%r, %d, '127.0.0.1', %d)\n"
        "    except asyncio.TimeoutError:\n        r = 'timeout'\n"
        "    except OSError as e:\n        r = 'error: %%s' %% e\n"
        "    print(json.dumps(r))\n"
        "asyncio.run(main())\n" % (host, timeout_ms, port))
    r = mpy(code)
    assert r.returncode == 0, r.err
    return r.json()


def test_answer_skips_cname(mpy, fake_dns):
    d = fake_dns("answer")
    assert _resolve(mpy, d.port, "broker.example.com", 2000) == "10.1.2.3"


def test_nxdomain_is_readable(mpy, fake_dns):
    d = fake_dns("nxdomain")
    assert _resolve(mpy, d.port, "nope.example.com", 2000) == \
        "error: host nope.example.com not found"


def test_silent_server_hits_the_deadline_and_retries(mpy, fake_dns):
    d = fake_dns("silent")
    assert _resolve(mpy, d.port, "slow.example.com", 2500) == "timeout"
    assert d.queries >= 2  # asked again after a second


def test_is_ip(mpy):
    r = mpy("import json\nfrom perch.dnsquery import is_ip\n"
            "print(json.dumps([is_ip(h) for h in ('10.0.0.1', '::1', 'a.b', '1.2.3.256',"
            " 'localhost', '1.2.3')]))\n")
    assert r.json() == [True, True, False, False, False, False]
