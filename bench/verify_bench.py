"""What forwardAuth costs: request latency through the real gateway with and without the verify
hop, per credential kind, plus the verify endpoint called directly.

Starts its own small stack (PostgreSQL, Redis, Better Auth, the profile service, Traefik) on
random loopback ports, signs up one reader, then sends sequential keep-alive requests:

    uv run --frozen python -m bench.verify_bench [--requests 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from lectern_dev.stack import Ports, Stack, StackConfig
from tests.support.readers import new_reader

WARMUP = 200


def measure(send: Callable[[], httpx.Response], requests: int) -> dict[str, float]:
    """p50/p95 in milliseconds over `requests` calls, after a warm-up; every call must be 200."""
    for _ in range(WARMUP):
        send()
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        response = send()
        samples.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"unexpected {response.status_code}: {response.text[:200]}")
    quantiles = statistics.quantiles(samples, n=100)
    return {"p50_ms": round(statistics.median(samples), 3), "p95_ms": round(quantiles[94], 3)}


def run(stack: Stack, requests: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=stack.gateway_url, timeout=10.0) as gateway:
        reader = new_reader(gateway)
        scenarios = {
            # Same service, same kind of tiny JSON answer; only the middleware chain differs.
            "gateway, no forwardAuth (/api/profile/health)":
                lambda: gateway.get("/api/profile/health"),
            "gateway + forwardAuth, anonymous (/api/profile/options)":
                lambda: gateway.get("/api/profile/options"),
            "gateway + forwardAuth, JWT":
                lambda: gateway.get("/api/profile/options", headers=reader.jwt_headers),
            "gateway + forwardAuth, session token":
                lambda: gateway.get("/api/profile/options", headers=reader.headers),
        }
        for name, send in scenarios.items():
            results[name] = measure(send, requests)
        verify_url = f"{stack.config.url('profile')}/internal/auth/verify"
        internal = {"x-internal-token": stack.secrets["INTERNAL_TOKEN"]}
        with httpx.Client(timeout=10.0, headers=internal) as direct:
            results["verify direct, JWT"] = measure(
                lambda: direct.get(verify_url, headers=reader.jwt_headers), requests)
            results["verify direct, session token"] = measure(
                lambda: direct.get(verify_url, headers=reader.headers), requests)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lectern-bench-") as tmp:
        # Rate limits high enough that the benchmark measures latency, not 429s.
        config = StackConfig(data_dir=Path(tmp), ports=Ports.random(), services=("profile",),
                             extra_env={"RATE_API_PER_S": "100000", "RATE_API_BURST": "100000",
                                        "LOG_LEVEL": "WARNING"})
        with Stack(config) as stack:
            results = run(stack, args.requests)
    base = results["gateway, no forwardAuth (/api/profile/health)"]["p50_ms"]
    print(f"{'scenario':58} {'p50 ms':>8} {'p95 ms':>8} {'+p50 vs no forwardAuth':>24}")
    for name, figures in results.items():
        extra = f"{figures['p50_ms'] - base:+.3f}" if name.startswith("gateway +") else ""
        print(f"{name:58} {figures['p50_ms']:8.3f} {figures['p95_ms']:8.3f} {extra:>24}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"requests": args.requests, "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
