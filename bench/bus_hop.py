"""One Kafka hop against consumer fetch settings: latency and what an idle consumer costs.

    python bench/bus_hop.py [--url kafka://host:port] [--waits 5,20,100,500]

Needs a broker: TICKRAIL_KAFKA_URL, or start the test one with
``python scripts/test_services.py start --env-file .ci/services/env``.
For each ``fetch_max_wait_ms`` it prints the CPU an idle consumer (on a
topic of 6 partitions) spends per second of wall time, right after traffic and
once it has been quiet past ``fetch_idle_after_ms`` (where the fetch wait
becomes ``fetch_idle_wait_ms``), the latency of the first message after that
quiet period, then the publish -> poll latency of 40 messages sent one at a
time (p50/p90/max), and what committing each one's offset takes. Not a test:
numbers vary with load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tickrail.adapters import Consumer, Message
from tickrail.adapters.bus.kafka import KafkaBus


async def idle_cpu(consumer: Consumer, seconds: float) -> float:
    """Share of a core the consumer spends polling an empty topic for ``seconds``."""
    c0, w0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - w0 < seconds:
        await consumer.poll(500, timeout=0.2)
    return (time.process_time() - c0) / (time.perf_counter() - w0)


async def hop(bus: KafkaBus, consumer: Consumer, topic: str, key: str) -> list[Message]:
    await bus.publish([Message(topic, key, b"x" * 200)])
    got: list[Message] = []
    while not got:
        got = await consumer.poll(500, timeout=5)
    return got


async def measure(
    url: str, wait_ms: int, quiet_ms: int
) -> tuple[float, float, float, list[float], list[float]]:
    sep = "&" if "?" in url else "?"
    async with KafkaBus(
        f"{url}{sep}fetch_max_wait_ms={wait_ms}&fetch_idle_after_ms={quiet_ms}"
    ) as bus:
        topic = f"hop-{uuid.uuid4().hex[:8]}"
        consumer = await bus.subscribe([topic], f"hop-{uuid.uuid4().hex[:8]}")
        try:
            # Idle: the consumer polls an empty topic, as a role does between steps.
            await consumer.commit(await hop(bus, consumer, topic, "warm"))
            busy_idle = await idle_cpu(consumer, 0.8 * quiet_ms / 1000)
            await idle_cpu(consumer, 0.4 * quiet_ms / 1000)  # until past the quiet period
            quiet_idle = await idle_cpu(consumer, 3.0)
            sent = time.perf_counter()
            await consumer.commit(await hop(bus, consumer, topic, "first"))
            first = time.perf_counter() - sent
            hops: list[float] = []
            commits: list[float] = []
            for i in range(40):
                await asyncio.sleep(0.05)  # let the consumer go idle again
                sent = time.perf_counter()
                got = await hop(bus, consumer, topic, f"k{i}")
                hops.append(time.perf_counter() - sent)
                c = time.perf_counter()
                await consumer.commit(got)
                commits.append(time.perf_counter() - c)
        finally:
            await consumer.close()
    return busy_idle, quiet_idle, first, hops, commits


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("TICKRAIL_KAFKA_URL"))
    parser.add_argument("--waits", default="5,20,100,500")
    parser.add_argument(
        "--quiet-ms", type=int, default=3000, help="fetch_idle_after_ms for the run"
    )
    args = parser.parse_args()
    if not args.url:
        sys.exit("no broker: pass --url or set TICKRAIL_KAFKA_URL (scripts/test_services.py)")
    print(f"load average {os.getloadavg()[0]:.1f}; publish -> poll, 40 hops each")
    print(
        f"  {'fetch_max_wait_ms':>17}  {'idle CPU':>9} {'quiet':>6} {'first':>8}"
        f"  {'p50':>8} {'p90':>8} {'max':>8}"
    )
    for wait in (int(w) for w in args.waits.split(",")):
        busy_idle, quiet_idle, first, hops, commits = asyncio.run(
            measure(args.url, wait, args.quiet_ms)
        )
        q = statistics.quantiles(hops, n=10)
        print(
            f"  {wait:>17}  {busy_idle * 100:8.1f}% {quiet_idle * 100:5.1f}% {first * 1e3:6.1f}ms"
            f"  {q[4] * 1e3:6.1f}ms {q[8] * 1e3:6.1f}ms {max(hops) * 1e3:6.1f}ms"
            f"   commit p50 {statistics.median(commits) * 1e3:.1f}ms"
        )


if __name__ == "__main__":
    main()
