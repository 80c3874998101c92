#!/usr/bin/env python3
"""The hostile clients of benches/soak.sh, each kind in its own threads until the deadline:

  never-read   HTTP/1.1: sends GETs for large segments and never reads a byte of the answers.
  h2-zero      HTTP/2 (h2c, prior knowledge): SETTINGS_INITIAL_WINDOW_SIZE = 0, then STREAMS
               GETs for segments; it reads and acknowledges every frame (SETTINGS, PING) but
               never opens a window, so no DATA can be sent and the responses wait, buffered.
  slowloris    HTTP/1.1: a request head trickled one byte every 2 s, never finished.

A connection the server closes is replaced by a new one. A connection the server keeps for
longer than HOLD seconds is counted as outliving it, left open, and another one opened beside
it (at most MAX_HELD per client), so a server that never closes such connections accumulates
them, as it would under an attacker. At the end it prints one line per kind:
  SLOW kind=… opened=N closed_by_server=N outlived=N max_life_s=S

Usage: slow_clients.py PORT PATHS_FILE SECONDS HOLD  (counts from NEVER_READ=8 H2_ZERO=4
  SLOWLORIS=16 STREAMS=16 MAX_HELD=8 in the environment)
"""
import os
import random
import socket
import sys
import threading
import time

import h2frames

PORT, PATHS, SECONDS, HOLD = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
DEADLINE = time.monotonic() + SECONDS
STREAMS = int(os.environ.get("STREAMS", "16"))
MAX_HELD = int(os.environ.get("MAX_HELD", "8"))
paths = [line.strip() for line in open(PATHS) if line.strip()]
stats_lock = threading.Lock()
stats = {}


def count(kind, key, value=1, op=int.__add__):
    with stats_lock:
        s = stats.setdefault(kind, {"opened": 0, "closed_by_server": 0, "outlived": 0, "max_life_s": 0})
        s[key] = op(s[key], value)


def connect():
    sock = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    sock.setblocking(False)
    return sock


# tcp_info's first byte is the socket's state: the peer's FIN moves it to CLOSE_WAIT, a reset to
# CLOSE. This sees a close behind unread data, which is what a client that never reads has.
TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8


def closed_by_server(sock):
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] in (TCP_CLOSE, TCP_CLOSE_WAIT)
    except OSError:
        return True


SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000


def client(kind):
    held = []  # (socket, opened at, state)
    while time.monotonic() < DEADLINE:
        if len(held) < MAX_HELD and (not held or time.monotonic() - held[-1][1] > HOLD):
            if held:
                count(kind, "outlived")
            try:
                if kind == "h2-zero":
                    sock, state = h2frames.open_connection(PORT, random.choices(paths, k=STREAMS), initial_window=0), bytearray()
                else:
                    sock, state = connect(), {"sent": 0}
                    if kind == "never-read":
                        sock.setblocking(True)
                        sock.sendall(b"".join(f"GET {random.choice(paths)} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for _ in range(4)))
                        sock.setblocking(False)
                held.append((sock, time.monotonic(), state))
                count(kind, "opened")
            except OSError:
                time.sleep(1)
        for entry in list(held):
            sock, opened, state = entry
            gone = closed_by_server(sock)
            if not gone and kind == "h2-zero":
                try:
                    gone = h2frames.serve(sock, state)
                except OSError:
                    gone = True
            elif not gone and kind == "slowloris" and time.monotonic() - opened > 2 * state["sent"]:
                try:
                    sock.send(SLOW_HEAD[state["sent"] : state["sent"] + 1])
                    state["sent"] += 1
                except OSError:
                    gone = True
            if gone:
                life = time.monotonic() - opened
                count(kind, "closed_by_server")
                count(kind, "max_life_s", life, max)
                sock.close()
                held.remove(entry)
        time.sleep(0.2)
    for sock, opened, _ in held:
        count(kind, "max_life_s", time.monotonic() - opened, max)
        sock.close()


threads = [
    threading.Thread(target=client, args=(kind,), daemon=True)
    for kind, env, default in (("never-read", "NEVER_READ", 8), ("h2-zero", "H2_ZERO", 4), ("slowloris", "SLOWLORIS", 16))
    for _ in range(int(os.environ.get(env, default)))
]
for t in threads:
    t.start()
for t in threads:
    t.join()
for kind, s in sorted(stats.items()):
    print(f"SLOW kind={kind} " + " ".join(f"{k}={v:.0f}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items()), flush=True)
