"""One Kafka hop against consumer fetch settings: latency and what an idle consumer costs.

    python bench/bus_hop.py [--url kafka://host:port] [--waits 5,20,100,500]

Needs a broker: TICKRAIL_KAFKA_URL, or start the test one with
``python scripts/test_services.py start --env-file .ci/services/env``.
For each ``fetch_max_wait_ms`` it prints the CPU an idle consumer (on a
topic of 6 partitions) spends per second of wall time, and the publish ->
poll latency of 40 messages sent one at a time (p50/p90/max), and what
committing each one's offset takes. Not a test:
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

from tickrail.adapters import Message
from tickrail.adapters.bus.kafka import KafkaBus


async def measure(url: str, wait_ms: int) -> tuple[float, list[float], list[float]]:
    sep = "&" if "?" in url else "?"
    async with KafkaBus(f"{url}{sep}fetch_max_wait_ms={wait_ms}") as bus:
        topic = f"hop-{uuid.uuid4().hex[:8]}"
        consumer = await bus.subscribe([topic], f"hop-{uuid.uuid4().hex[:8]}")
        try:
            # Idle: the consumer polls an empty topic, as a role does between steps.
            c0, w0 = time.process_time(), time.perf_counter()
            while time.perf_counter() - w0 < 3.0:
                await consumer.poll(500, timeout=0.2)
            idle = (time.process_time() - c0) / (time.perf_counter() - w0)
            hops: list[float] = []
            commits: list[float] = []
            for i in range(40):
                await asyncio.sleep(0.05)  # let the consumer go idle again
                sent = time.perf_counter()
                await bus.publish([Message(topic, f"k{i}", b"x" * 200)])
                got: list[Message] = []
                while not got:
                    got = await consumer.poll(500, timeout=5)
                hops.append(time.perf_counter() - sent)
                c = time.perf_counter()
                await consumer.commit(got)
                commits.append(time.perf_counter() - c)
        finally:
            await consumer.close()
    return idle, hops, commits


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("TICKRAIL_KAFKA_URL"))
    parser.add_argument("--waits", default="5,20,100,500")
    args = parser.parse_args()
    if not args.url:
        sys.exit("no broker: pass --url or set TICKRAIL_KAFKA_URL (scripts/test_services.py)")
    print(f"load average {os.getloadavg()[0]:.1f}; publish -> poll, 40 hops each")
    print(f"  {'fetch_max_wait_ms':>17}  {'idle CPU':>9}  {'p50':>8} {'p90':>8} {'max':>8}")
    for wait in (int(w) for w in args.waits.split(",")):
        idle, hops, commits = asyncio.run(measure(args.url, wait))
        q = statistics.quantiles(hops, n=10)
        print(
            f"  {wait:>17}  {idle * 100:8.1f}%  {q[4] * 1e3:6.1f}ms {q[8] * 1e3:6.1f}ms"
            f" {max(hops) * 1e3:6.1f}ms   commit p50 {statistics.median(commits) * 1e3:.1f}ms"
        )


if __name__ == "__main__":
    main()
