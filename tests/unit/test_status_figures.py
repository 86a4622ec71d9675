"""The status page's arithmetic on /metrics samples: rates, 5xx share, p95 from histogram
buckets, cache hit rate, a restarted counter, and the probes left out."""

from __future__ import annotations

from collections import deque

import pytest

from lectern_common.status import Sample, p95, parse_metrics, window_figures

METRICS = """
# TYPE lectern_http_requests_total counter
lectern_http_requests_total{{method="GET",route="/api/x",service="s",status="200"}} {ok}
lectern_http_requests_total{{method="GET",route="/api/x",service="s",status="503"}} {bad}
lectern_http_requests_total{{method="GET",route="/metrics",service="s",status="200"}} 999
# TYPE lectern_http_request_duration_seconds histogram
lectern_http_request_duration_seconds_bucket{{le="0.1",method="GET",route="/x",service="s"}} {fast}
lectern_http_request_duration_seconds_bucket{{le="1.0",method="GET",route="/x",service="s"}} {all}
lectern_http_request_duration_seconds_bucket{{le="+Inf",method="GET",route="/x",service="s"}} {all}
lectern_http_request_duration_seconds_count{{method="GET",route="/api/x",service="s"}} {all}
lectern_http_request_duration_seconds_sum{{method="GET",route="/api/x",service="s"}} 1.0
# TYPE lectern_summary_cache_lookups_total counter
lectern_summary_cache_lookups_total{{kind="summary",result="hit"}} {hit}
lectern_summary_cache_lookups_total{{kind="summary",result="miss"}} 1
# TYPE lectern_start_time_seconds gauge
lectern_start_time_seconds{{service="s"}} 1700000000
"""


def sample(at: float, *, ok: int, bad: int, fast: int, hit: int) -> Sample:
    all_ = ok + bad
    text = METRICS.format(ok=ok, bad=bad, fast=fast, all=all_, hit=hit)
    return parse_metrics(text, at)


def test_rates_and_shares_come_from_the_increase_over_the_window():
    samples = deque(
        [sample(0, ok=100, bad=0, fast=100, hit=0), sample(10, ok=190, bad=10, fast=100, hit=3)]
    )
    figures = window_figures(samples)
    assert figures["requests_per_s"] == pytest.approx(10.0)  # 100 more in 10 s, probes left out
    assert figures["error_share"] == pytest.approx(0.1)
    # 100 new requests, none under 0.1 s: the p95 sits 95% of the way through (0.1, 1].
    assert figures["p95_ms"] == pytest.approx(955.0)
    assert figures["cache_hit_rate"] == pytest.approx(1.0)
    assert samples[-1].started == 1700000000


def test_a_restarted_service_counts_from_zero_again():
    samples = deque(
        [sample(0, ok=500, bad=0, fast=500, hit=0), sample(5, ok=5, bad=5, fast=5, hit=0)]
    )
    figures = window_figures(samples)
    assert figures["requests_per_s"] == pytest.approx(2.0)
    assert figures["error_share"] == pytest.approx(0.5)


def test_one_sample_gives_no_rates_and_an_empty_histogram_no_p95():
    assert window_figures(deque([sample(0, ok=1, bad=0, fast=1, hit=0)])) == {}
    assert p95({0.1: 0.0, float("inf"): 0.0}) is None
    assert p95({0.1: 10.0, float("inf"): 10.0}) == pytest.approx(0.095)
