#!/usr/bin/env python3
"""Holds N idle connections to the origin, for measuring what a connection costs in RSS
(benches/soak/connection-cost.sh). MODE:
  bare  connected, nothing sent (the server waits for a first request head);
  h1    one HTTP/1.1 GET PATH answered and read, then kept alive;
  tls   the same over TLS (PORT is the [tls] listener; the certificate is not checked);
  h2    h2c: preface, SETTINGS, one GET PATH answered and read, then kept open (SETTINGS and
        PING answered).
Prints "READY n" when all are up, then holds them until stdin closes.

Usage: idle_connections.py PORT MODE N PATH
"""
import resource
import select
import socket
import ssl
import sys

import h2frames

port, mode, n, path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))


def read_until(sock, done):
    buf = bytearray()
    sock.setblocking(True)
    sock.settimeout(10)
    while not done(buf):
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        buf += data
    sock.setblocking(False)


def h1_answered(buf):
    head, sep, body = bytes(buf).partition(b"\r\n\r\n")
    if not sep:
        return False
    length = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    return len(body) >= (length[0] if length else 0)


def h2_answered(buf):
    # The stream's END_STREAM flag on a HEADERS or DATA frame of stream 1.
    i = 0
    while i + 9 <= len(buf):
        size = int.from_bytes(buf[i : i + 3], "big")
        if buf[i + 3] in (0, 1) and buf[i + 4] & 1 and int.from_bytes(buf[i + 5 : i + 9], "big") == 1:
            return True
        i += 9 + size
    return False


tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
tls.set_alpn_protocols(["http/1.1"])
socks = []
for _ in range(n):
    if mode == "h2":
        sock = h2frames.open_connection(port, [path])
        read_until(sock, h2_answered)
        sock.send(h2frames.frame(4, 1, 0))  # acknowledge the server's SETTINGS
    else:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if mode == "tls":
            sock = tls.wrap_socket(sock)
        if mode in ("h1", "tls"):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            read_until(sock, h1_answered)
        sock.setblocking(False)
    socks.append(sock)
print(f"READY {len(socks)}", flush=True)
buffers = {s: bytearray() for s in socks}
while not (select.select([sys.stdin], [], [], 1)[0] and sys.stdin.read(1) == ""):
    for sock in socks if mode == "h2" else []:
        try:
            h2frames.serve(sock, buffers[sock])
        except OSError:
            pass
