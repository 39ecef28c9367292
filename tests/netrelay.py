"""A TCP relay for the multi-host test: listens on the host side of each test host's veth
link and forwards every connection to the same port on 127.0.0.1, where the machine's
services (PostgreSQL, Redis, the S3 server) listen. Run as a script:

    python tests/netrelay.py --listen 10.213.4.1,10.213.4.5 --ports 5432,6379,9000

It serves until it is terminated; its listening sockets exist only on the test hosts' own
link addresses (made by the test in its own network namespaces).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _handler(port: int):  # noqa: ANN202
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


async def main(addresses: list[str], ports: list[int]) -> None:
    servers = [
        await asyncio.start_server(_handler(port), addr, port)
        for addr in addresses
        for port in ports
    ]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--ports", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.listen.split(","), [int(p) for p in args.ports.split(",")]))
