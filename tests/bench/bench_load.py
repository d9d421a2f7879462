"""The load test's figures: 16 clients, 5,000 mixed requests (text, audio JSON, interrupts) over loopback.

Same requests and clients as tests/test_app_load.py, against a relay on a fake
CallClient that confirms at once; prints requests/s, latency p50/p99 and the
process's peak RSS (relay, fake room and the 16 clients together).
"""

from __future__ import annotations

import resource
import statistics
import time

from harness import exit_if_failed, relay_on_fake_daily

from tests.test_app_load import CLIENTS, REQUESTS, WARM_UP, make_requests, run_clients


def main() -> None:
    warm_up, load = make_requests("warm", WARM_UP, seed=1), make_requests("load", REQUESTS, seed=2)
    with relay_on_fake_daily() as (port, fake):
        fake.keep = lambda message: None  # the figures are the relay's, not a log's
        run_clients(port, warm_up)
        started = time.perf_counter()
        run_clients(port, load)
        elapsed = time.perf_counter() - started
    failed = [r for r in load if r.status != 200 and not (r.status == 409 and r.kind != "interrupt")]
    exit_if_failed("load", len(failed), failed and f"{failed[0].kind} {failed[0].status} {failed[0].detail}")
    latencies = sorted(request.took_s for request in load)
    statuses: dict[int, int] = {}
    for request in load:
        statuses[request.status] = statuses.get(request.status, 0) + 1
    kinds = {kind: sum(1 for r in load if r.kind == kind) for kind in ("text", "audio", "interrupt")}
    print(f"{REQUESTS} requests {kinds} from {CLIENTS} clients in {elapsed:.2f} s: {REQUESTS / elapsed:.0f} requests/s")
    print(
        f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms; statuses {statuses}"
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
