"""Hostile traffic against a notification listener, run as its own process (its CPU is not the
server's): a flood of costly bodies, slow clients that never finish a request, and a legitimate
Graph-like sender in the middle of it. Prints one JSON summary line.

    python -m bench.kit.webhook_attack --port P --client-state S --tenant T [--scale N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from typing import Any

TENANT = "11111111-2222-3333-4444-555555555555"


def _item(client_state: str, tenant: str, uid: int) -> dict[str, Any]:
    return {
        "changeType": "updated",
        "clientState": client_state,
        "resource": f"Users/{uid:08d}-30f1-4fbe-be57-1df593448f7a",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.User",
            "@odata.id": f"Users/{uid:08d}-30f1-4fbe-be57-1df593448f7a",
            "id": f"{uid:08d}-30f1-4fbe-be57-1df593448f7a",
            "organizationId": tenant,
            "sequenceNumber": 638059995676961300 + uid,
        },
        "subscriptionExpirationDateTime": "2099-12-10T10:23:45.9356913-08:00",
        "subscriptionId": "f43589a8-2107-4c5d-9c24-eea6301f162b",
        "tenantId": tenant,
    }


def hostile_bodies(max_body: int, tenant: str) -> dict[str, bytes]:
    """Bodies that each cost the most a given limit lets them cost (and some beyond)."""
    budget = max_body // 16
    wrong = [_item("x" * 44, tenant, i) for i in range(max_body // 620)]
    return {
        "empty_items": b'{"value":[' + b",".join([b"{}"] * (max_body // 3 - 8)) + b"]}",
        "items_at_budget": b'{"value":[' + b",".join([b'{"a":1}'] * (budget // 3 - 8)) + b"]}",
        "wrong_state_items": json.dumps({"value": wrong}, separators=(",", ":")).encode(),
        "big_ints": b'{"value":[' + b",".join([b"7" * 4000] * (max_body // 4001 - 1)) + b"]}",
        "floats": b'{"value":[' + b",".join([b"1.7976931348623157e308"] * (max_body // 23 - 8)) + b"]}",
        "nested_lists": b'{"value":[' + b",".join([b"[[[]]]"] * (budget // 4 - 8)) + b"]}",
        "deep": b"[" * (max_body // 2 - 1) + b"]" * (max_body // 2 - 1),
        "long_keys": b'{"value":[{'
        + b",".join(b'"%060d":0' % i for i in range(min(budget // 2 - 8, max_body // 66)))
        + b"}]}",
        "garbage": random.Random(1).randbytes(max_body - 10),
        "oversized": b'{"value":[' + b"0," * (max_body * 2) + b"0]}",
    }


async def _request(port: int, head: bytes, body: bytes, *, chunked: bool = False) -> int:
    """One HTTP/1.1 request on a fresh connection; the status code (0: connection dropped)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0
    try:
        if chunked:
            writer.write(head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            for i in range(0, len(body), 65536):
                chunk = body[i : i + 65536]
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 30)
        return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else 0
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError, TimeoutError):
        return 0
    finally:
        writer.close()


HEAD = b"POST /notifications HTTP/1.1\r\nHost: syncd\r\nContent-Type: application/json\r\n"


async def flood(port: int, bodies: dict[str, bytes], rounds: int, workers: int) -> Counter[str]:
    statuses: Counter[str] = Counter()
    names = sorted(bodies)

    async def worker(w: int) -> None:
        for r in range(rounds):
            name = names[(w + r) % len(names)]
            status = await _request(port, HEAD, bodies[name], chunked=name == "oversized" and r % 2 == 0)
            statuses[f"{name}:{status}"] += 1

    await asyncio.gather(*(worker(w) for w in range(workers)))
    return statuses


async def slow_client(port: int, kind: str, give_up: float) -> float | None:
    """Never finishes its request; seconds until the server closed the connection (None: never)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0.0
    started = time.monotonic()
    try:
        if kind == "head":
            writer.write(b"POST /notifications HTTP/1.1\r\nHost: syncd\r\n")
        else:
            writer.write(HEAD + b"Content-Length: 100000\r\n\r\n" + b'{"value":[' + b" " * 100)
        await writer.drain()
        while time.monotonic() - started < give_up:
            try:
                data = await asyncio.wait_for(reader.read(4096), 0.25)
            except TimeoutError:
                writer.write(b"X-Slow: 1\r\n" if kind == "head" else b" ")  # a trickle, never the end
                await writer.drain()
                continue
            if not data:
                return time.monotonic() - started
            # an answer (408) then EOF also counts as being let go
        return None
    except OSError:
        return time.monotonic() - started
    finally:
        writer.close()


async def legitimate(port: int, client_state: str, tenant: str, until: float) -> list[tuple[int, float]]:
    out: list[tuple[int, float]] = []
    uid = 0
    while time.monotonic() < until:
        uid += 1
        body = json.dumps({"value": [_item(client_state, tenant, uid)]}).encode()
        t0 = time.monotonic()
        status = await _request(port, HEAD, body)
        out.append((status, round(time.monotonic() - t0, 4)))
        await asyncio.sleep(0.2)
    return out


async def attack(args: argparse.Namespace) -> dict[str, Any]:
    bodies = hostile_bodies(args.max_body, args.tenant)
    started = time.monotonic()
    slow = [
        asyncio.create_task(slow_client(args.port, "head" if i % 2 else "body", args.give_up))
        for i in range(args.slow)
    ]
    await asyncio.sleep(0.2)
    legit = asyncio.create_task(
        legitimate(args.port, args.client_state, args.tenant, started + args.give_up - 1)
    )
    statuses = await flood(args.port, bodies, args.rounds, args.workers)
    closed = await asyncio.gather(*slow)
    return {
        "flood": dict(sorted(statuses.items())),
        "slow_closed_after": [None if c is None else round(c, 2) for c in closed],
        "legitimate": await legit,
        "seconds": round(time.monotonic() - started, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-state", required=True)
    p.add_argument("--tenant", default=TENANT)
    p.add_argument("--max-body", type=int, default=131_072)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--slow", type=int, default=40)
    p.add_argument("--give-up", type=float, default=6.0)
    print(json.dumps(asyncio.run(attack(p.parse_args()))))


if __name__ == "__main__":
    main()
