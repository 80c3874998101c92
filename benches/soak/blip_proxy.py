#!/usr/bin/env python3
"""The storage blip of benches/soak.sh: a TCP proxy from 127.0.0.1:LISTEN to 127.0.0.1:TARGET
(the S3 emulator). SIGUSR1 cuts it as an outage does (every proxied connection is reset and new
ones are refused: the listener is closed); SIGUSR2 opens it again on the same port.

Usage: blip_proxy.py LISTEN_PORT TARGET_PORT
"""
import asyncio
import signal
import socket
import sys


class Proxy:
    def __init__(self, listen: int, target: int):
        self.listen, self.target = listen, target
        self.server = None
        self.open = set()  # transports of live proxied connections, both sides

    async def up(self):
        if self.server is None:
            self.server = await asyncio.start_server(self.client, "127.0.0.1", self.listen, reuse_address=True)
            print("up", flush=True)

    async def down(self):
        if self.server is not None:
            self.server.close()
            self.server = None
        for transport in list(self.open):
            # SO_LINGER 0: a reset, as a dead peer or a dropped route gives, not a clean close.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            transport.abort()
        self.open.clear()
        print("down", flush=True)

    async def client(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer.transport, up_writer.transport}
        self.open |= pair
        await asyncio.gather(self.pipe(reader, up_writer), self.pipe(up_reader, writer))
        self.open -= pair

    @staticmethod
    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


async def main():
    proxy = Proxy(int(sys.argv[1]), int(sys.argv[2]))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(proxy.down()))
    loop.add_signal_handler(signal.SIGUSR2, lambda: asyncio.ensure_future(proxy.up()))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await proxy.up()
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
