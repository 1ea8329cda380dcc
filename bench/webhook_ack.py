"""How fast the webhook answers Graph: time from POST to 202 for valid change notifications.

Run: .venv/bin/python -m bench.webhook_ack [--requests 2000] [--runs 3]

The real webhook app (syncd.webhook) with the daemon's wake-up path (syncd.wakeup.WakeUps) behind
it, on 127.0.0.1; the round it wakes is a stand-in that sleeps 50 ms, so requests arrive while
rounds run, as they do in production. Goal (issue "Change notifications"): well under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
from aiohttp import web

from syncd.sim.harness import free_port
from syncd.wakeup import WakeUps
from syncd.webhook import WebhookHooks, create_webhook_app

STATE = "bench-client-state"
TENANT = "11111111-2222-3333-4444-555555555555"


async def one_run(requests: int) -> tuple[list[float], int]:
    rounds = 0

    async def work(origin: str) -> None:
        nonlocal rounds
        rounds += 1
        await asyncio.sleep(0.05)

    wakeups = WakeUps(work, cooldown=1.0)

    async def wake(origin: str) -> None:
        wakeups.request(origin)

    async def lifecycle(sub: str, event: str) -> None:
        return None

    app = create_webhook_app(
        WebhookHooks(wake=wake, lifecycle=lifecycle), client_state=STATE, tenant_id=TENANT
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    body = json.dumps(
        {
            "value": [
                {
                    "subscriptionId": "s",
                    "changeType": "updated",
                    "clientState": STATE,
                    "resource": "Users/abc",
                    "tenantId": TENANT,
                    "resourceData": {"id": "abc"},
                }
            ]
        }
    )
    times: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for i in range(requests):
            started = time.perf_counter()
            async with session.post(
                f"http://127.0.0.1:{port}/notifications",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as resp:
                assert resp.status == 202, resp.status
            times.append(time.perf_counter() - started)
            if i % 100 == 0:
                await asyncio.sleep(0)
    await wakeups.close(timeout=2)
    await runner.cleanup()
    return times, rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'run':>4} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'rounds woken':>13}")
    for run in range(1, args.runs + 1):
        times, rounds = asyncio.run(one_run(args.requests))
        ms = sorted(t * 1000 for t in times)
        p99 = ms[int(len(ms) * 0.99) - 1]
        print(f"{run:>4} {len(ms):>9} {statistics.median(ms):>8.2f} {p99:>8.2f} {ms[-1]:>8.2f} {rounds:>13}")


if __name__ == "__main__":
    main()
