"""What forwardAuth costs: request latency through the real gateway with and without the verify
hop, per credential kind, plus the verify endpoint called directly.

Starts its own small stack (PostgreSQL, Redis, Better Auth, the profile service, Traefik) on
random loopback ports, signs up one reader, then sends sequential keep-alive requests, the
scenarios taking turns:

    uv run --frozen python bench/verify_bench.py [--requests 2000] [--json out.json]
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

from lectern_dev.harness.cpu import CpuProbe
from lectern_dev.harness.readers import new_reader
from lectern_dev.harness.services import internal_headers
from lectern_dev.stack import Ports, Stack, StackConfig

WARMUP = 200


def summarize(samples: list[float]) -> dict[str, float]:
    quantiles = statistics.quantiles(samples, n=100)
    return {"p50_ms": round(statistics.median(samples), 3), "p95_ms": round(quantiles[94], 3)}


def measure(
    scenarios: dict[str, Callable[[], httpx.Response]], requests: int
) -> dict[str, dict[str, float]]:
    """p50/p95 in milliseconds per scenario. The scenarios take turns request by request, so
    a noisy neighbour slows them all alike instead of skewing whichever ran at that moment."""
    samples: dict[str, list[float]] = {name: [] for name in scenarios}
    for round_ in range(WARMUP + requests):
        for name, send in scenarios.items():
            start = time.perf_counter()
            response = send()
            elapsed = (time.perf_counter() - start) * 1000
            if response.status_code != 200:
                raise SystemExit(
                    f"{name}: unexpected {response.status_code}: {response.text[:200]}"
                )
            if round_ >= WARMUP:
                samples[name].append(elapsed)
    return {name: summarize(values) for name, values in samples.items()}


def cpu_per_request(
    stack: Stack, scenarios: dict[str, Callable[[], httpx.Response]], requests: int
) -> dict[str, dict[str, float]]:
    """CPU milliseconds the gateway and the profile service spend per request: unlike wall
    time, this hardly depends on what else the machine is doing."""
    probe = CpuProbe({name: stack.processes[name].popen.pid for name in ("gateway", "profile")})
    out = {}
    for name, send in scenarios.items():
        before = probe.snapshot()
        for _ in range(requests):
            send()
        per_request = CpuProbe.per_unit(before, probe.snapshot(), requests)
        out[name] = {f"{p}_cpu_ms": per_request[p] for p in ("gateway", "profile")}
    return out


def scenarios_for(
    stack: Stack, gateway: httpx.Client, direct: httpx.Client
) -> dict[str, Callable[[], httpx.Response]]:
    verify_url = f"{stack.config.url('profile')}/internal/auth/verify"
    reader = new_reader(gateway)
    jwt_headers, session_headers = reader.jwt_headers, reader.headers
    return {
        # Same service, same kind of tiny JSON answer; only the middleware chain differs.
        "gateway, no forwardAuth (/api/profile/health)": lambda: gateway.get("/api/profile/health"),
        "gateway + forwardAuth, anonymous (/api/profile/options)": lambda: gateway.get(
            "/api/profile/options"
        ),
        "gateway + forwardAuth, JWT": lambda: gateway.get(
            "/api/profile/options", headers=jwt_headers
        ),
        "gateway + forwardAuth, session token": lambda: gateway.get(
            "/api/profile/options", headers=session_headers
        ),
        "verify direct, JWT": lambda: direct.get(verify_url, headers=jwt_headers),
        "verify direct, session token": lambda: direct.get(verify_url, headers=session_headers),
    }


def run(stack: Stack, requests: int) -> dict[str, dict[str, float]]:
    with (
        httpx.Client(base_url=stack.gateway_url, timeout=10.0) as gateway,
        httpx.Client(timeout=10.0, headers=internal_headers(stack)) as direct,
    ):
        scenarios = scenarios_for(stack, gateway, direct)
        latency = measure(scenarios, requests)
        cpu = cpu_per_request(stack, scenarios, requests)
    return {name: {**latency[name], **cpu[name]} for name in scenarios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lectern-bench-") as tmp:
        # Rate limits high enough that the benchmark measures latency, not 429s.
        config = StackConfig(
            data_dir=Path(tmp),
            ports=Ports.random(),
            services=("profile",),
            extra_env={
                "RATE_API_PER_S": "100000",
                "RATE_API_BURST": "100000",
                "LOG_LEVEL": "WARNING",
            },
        )
        with Stack(config) as stack:
            results = run(stack, args.requests)
    base = results["gateway, no forwardAuth (/api/profile/health)"]["p50_ms"]
    print(
        f"{'scenario':58} {'p50 ms':>7} {'p95 ms':>7} {'+p50':>7} "
        f"{'gateway CPU ms/req':>19} {'profile CPU ms/req':>19}"
    )
    for name, f in results.items():
        extra = f"{f['p50_ms'] - base:+.3f}" if name.startswith("gateway +") else ""
        print(
            f"{name:58} {f['p50_ms']:7.3f} {f['p95_ms']:7.3f} {extra:>7} "
            f"{f['gateway_cpu_ms']:19.3f} {f['profile_cpu_ms']:19.3f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"requests": args.requests, "results": results}, indent=2))


if __name__ == "__main__":
    main()
