"""Just enough HTTP/2 (h2c with prior knowledge) for the soak's hostile and idle clients: the
connection preface, SETTINGS, GET requests with a hand-made HPACK block, and replies to the
server's SETTINGS and PING. No flow control: these clients never open a window."""
import socket


def frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack_string(value):
    """An HPACK string literal (no Huffman) with its 7-bit-prefix length."""
    data = value.encode()
    n = len(data)
    if n < 127:
        return bytes([n]) + data
    out, n = bytearray([127]), n - 127
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + data


def request(stream, authority, path):
    # :method GET and :scheme http from the static table (0x82, 0x86); :authority (1) and
    # :path (4) as literals without indexing, with indexed names.
    block = b"\x82\x86\x01" + hpack_string(authority) + b"\x04" + hpack_string(path)
    return frame(1, 0x5, stream, block)  # END_STREAM | END_HEADERS


def open_connection(port, paths, initial_window=65535):
    """Connects, sends the preface, SETTINGS_INITIAL_WINDOW_SIZE and one GET per path (streams
    1, 3, 5, …); returns the non-blocking socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, (4).to_bytes(2, "big") + initial_window.to_bytes(4, "big"))
    hello += b"".join(request(1 + 2 * i, f"127.0.0.1:{port}", p) for i, p in enumerate(paths))
    sock.sendall(hello)
    sock.setblocking(False)
    return sock


def serve(sock, buf):
    """Reads what arrived into `buf`, acknowledges SETTINGS and PING; True when the server
    closed the connection."""
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return False
    if not data:
        return True
    buf += data
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + n:
            break
        kind, flags, payload = buf[3], buf[4], bytes(buf[9 : 9 + n])
        del buf[: 9 + n]
        if kind == 4 and not flags & 1:
            sock.send(frame(4, 1, 0))
        elif kind == 6 and not flags & 1:
            sock.send(frame(6, 1, 0, payload))
    return False
