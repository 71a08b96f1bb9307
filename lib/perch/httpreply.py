# The HTTP guard's own answers (perch.httpguard), loaded when one is sent and dropped after:
# rejections, the busy answer and the captive redirect are rare next to served requests, and
# their text need not sit in RAM.
from perch import httpguard

# In one string each: every str constant would cost a heap object. _STATUS: the status
# lines; _MSG: the messages, numbered from 0 in order (httpguard's _E_*).
_STATUS = (
    "302 Found|400 Bad Request|408 Request Timeout|411 Length Required|"
    "413 Content Too Large|414 URI Too Long|429 Too Many Requests|"
    "431 Request Header Fields Too Large|"
)
_MSG = (
    "malformed request line|malformed header line|request head is not UTF-8|"
    "connection closed inside the request %s|"
    "this is a TLS handshake; the device serves plain http://|"
    "request line over 1024 bytes|request head over 4096 bytes|"
    "chunked request bodies are not supported; send Content-Length|bad Content-Length|"
    "body of %d bytes is over the %d byte limit|request %s not received within 5000 ms|"
    "malformed query string|too many connections, retry shortly|captive portal: %s|"
)


def answer(e, extra):
    """The whole answer to e (HttpError's args: status, message number[, its % arguments]),
    with extra header lines; logged unless extra is given (busy, captive: routine)."""
    p = 0
    for _ in range(e[1]):
        p = _MSG.find("|", p) + 1
    msg = _MSG[p : _MSG.find("|", p)]
    if len(e) > 2:
        msg %= e[2]
    if httpguard.log and not extra:
        httpguard.log.warning("http rejected", status=e[0], why=msg)
    body = (msg + "\n").encode()
    p = _STATUS.find("%d " % e[0])
    head = "HTTP/1.0 %s\r\nContent-Type: text/plain; charset=utf-8\r\n" % (
        _STATUS[p : _STATUS.find("|", p)]
    )
    head += "Content-Length: %d\r\nConnection: close\r\n%s\r\n" % (len(body), extra)
    return head.encode() + body
