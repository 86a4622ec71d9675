"""The Grafana dashboards as code: one per service plus an overview, written to
deploy/observability/grafana/dashboards/*.json by `python -m lectern_dev.dashboards`
(tests/observability checks the files are up to date and runs every panel's query against a
real Prometheus). Queries use the Prometheus job names of deploy/observability/prometheus.yml.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lectern_dev import REPO_ROOT

OUT = REPO_ROOT / "deploy" / "observability" / "grafana" / "dashboards"
PY_SERVICES = ("chat", "retrieval", "profile", "summary")
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[str, ...]
    unit: str = "short"
    legend: str = ""
    kind: str = "timeseries"


def p95(metric: str, where: str, by: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile(0.95, sum by ({group}) (rate({metric}_bucket{{{where}}}[5m])))"


def service_panels(job: str) -> list[Panel]:
    """What every Python service shows: requests, errors, latency, stores, uptime."""
    sel = f'job="{job}"'
    return [
        Panel("Up (scrape)", (f"up{{{sel}}}",), kind="stat"),
        Panel(
            "Dependencies up (last readiness check)",
            (f"min by (dependency) (lectern_dependency_up{{{sel}}})",),
            legend="{{dependency}}",
        ),
        Panel(
            "Dependency check latency",
            (f"max by (dependency) (lectern_dependency_check_seconds{{{sel}}})",),
            unit="s",
            legend="{{dependency}}",
        ),
        Panel(
            "Uptime",
            (f"time() - max(lectern_start_time_seconds{{{sel}}})",),
            unit="s",
            kind="stat",
        ),
        Panel(
            "Requests per second by route",
            (f"sum by (route) (rate(lectern_http_requests_total{{{sel}}}[1m]))",),
            unit="reqps",
            legend="{{route}}",
        ),
        Panel(
            "p95 latency by route",
            (p95("lectern_http_request_duration_seconds", sel, "route"),),
            unit="s",
            legend="{{route}}",
        ),
        Panel(
            "Share of 5xx answers",
            (
                f'(sum(rate(lectern_http_requests_total{{{sel},status=~"5.."}}[5m])) or vector(0))'
                f" / sum(rate(lectern_http_requests_total{{{sel}}}[5m]))",
            ),
            unit="percentunit",
        ),
        Panel(
            "Errors by status and route",
            (
                f"sum by (status, route) "
                f'(increase(lectern_http_requests_total{{{sel},status=~"[45].."}}[15m]))',
            ),
            legend="{{status}} {{route}}",
        ),
        Panel(
            "PostgreSQL pool",
            (
                f"sum by (state) (lectern_db_pool_connections{{{sel}}})",
                f"sum(lectern_db_pool_waiting{{{sel}}})",
            ),
            legend="{{state}}",
        ),
        Panel(
            "Redis errors per second",
            (f"sum(rate(lectern_redis_errors_total{{{sel}}}[5m]))",),
            unit="ops",
        ),
    ]


def model_panels(job: str) -> list[Panel]:
    sel = f'job="{job}"'
    return [
        Panel(
            "Model calls per second",
            (f"sum by (operation, outcome) (rate(lectern_model_calls_total{{{sel}}}[5m]))",),
            unit="ops",
            legend="{{operation}} {{outcome}}",
        ),
        Panel(
            "Model tokens per second",
            (f"sum by (direction) (rate(lectern_model_tokens_total{{{sel}}}[5m]))",),
            legend="{{direction}}",
        ),
        Panel(
            "Model failures and retries per second",
            (
                f"sum by (kind) (rate(lectern_model_failures_total{{{sel}}}[5m]))",
                f"sum(rate(lectern_model_retries_total{{{sel}}}[5m]))",
            ),
            unit="ops",
            legend="{{kind}}",
        ),
        Panel(
            "Model call p95",
            (p95("lectern_model_call_duration_seconds", sel, "operation"),),
            unit="s",
            legend="{{operation}}",
        ),
    ]


def chat_panels() -> list[Panel]:
    sel = 'job="chat"'
    return [
        Panel(
            "Open answer streams / answers in progress",
            (
                f"sum(lectern_chat_open_streams{{{sel}}})",
                f"sum(lectern_chat_answers_in_progress{{{sel}}})",
            ),
        ),
        Panel(
            "Answers per second by status",
            (f"sum by (status) (rate(lectern_chat_answers_total{{{sel}}}[5m]))",),
            unit="ops",
            legend="{{status}}",
        ),
        Panel(
            "Time to sources / first token (p95)",
            (
                p95("lectern_chat_time_to_sources_seconds", sel),
                p95("lectern_chat_time_to_first_token_seconds", sel),
            ),
            unit="s",
        ),
        *model_panels("chat"),
    ]


def summary_panels() -> list[Panel]:
    sel = 'job="summary"'
    return [
        Panel(
            "Cache hit rate",
            (
                f'sum(rate(lectern_summary_cache_lookups_total{{{sel},result="hit"}}[15m]))'
                f" / sum(rate(lectern_summary_cache_lookups_total{{{sel}}}[15m]))",
            ),
            unit="percentunit",
        ),
        Panel(
            "Summaries by outcome",
            (f"sum by (outcome) (increase(lectern_summary_outcomes_total{{{sel}}}[15m]))",),
            legend="{{outcome}}",
        ),
        Panel(
            "Single-flight waits per second",
            (f"sum(rate(lectern_summary_flight_waits_total{{{sel}}}[5m]))",),
            unit="ops",
        ),
        *model_panels("summary"),
    ]


def retrieval_panels() -> list[Panel]:
    sel = 'job="retrieval"'
    return [
        Panel(
            "Search p95 per leg",
            (p95("lectern_search_leg_duration_seconds", sel, "leg"),),
            unit="s",
            legend="{{leg}}",
        ),
        Panel(
            "Searches per second by mode",
            (f"sum by (mode) (rate(lectern_search_duration_seconds_count{{{sel}}}[5m]))",),
            unit="ops",
            legend="{{mode}}",
        ),
        Panel(
            "Embedding calls per second",
            (f"sum by (provider, kind) (rate(lectern_embedding_calls_total{{{sel}}}[5m]))",),
            unit="ops",
            legend="{{provider}} {{kind}}",
        ),
        Panel(
            "Ingest progress",
            (
                f"sum(lectern_ingest_remaining_chunks{{{sel}}})",
                f"sum(increase(lectern_ingest_embedded_chunks_total{{{sel}}}[15m]))",
                f"sum(lectern_ingest_in_progress{{{sel}}})",
            ),
        ),
        Panel(
            "Since the last ingest",
            (f"time() - max(lectern_ingest_last_success_time_seconds{{{sel}}})",),
            unit="s",
            kind="stat",
        ),
    ]


def gateway_panels() -> list[Panel]:
    sel = 'job="gateway"'
    return [
        Panel("Up (scrape)", (f"up{{{sel}}}",), kind="stat"),
        Panel(
            "Requests per second by route",
            (f"sum by (router) (rate(traefik_router_requests_total{{{sel}}}[1m]))",),
            unit="reqps",
            legend="{{router}}",
        ),
        Panel(
            "Answers by code",
            (f"sum by (code) (rate(traefik_entrypoint_requests_total{{{sel}}}[5m]))",),
            unit="reqps",
            legend="{{code}}",
        ),
        Panel(
            "p95 latency by service",
            (p95("traefik_service_request_duration_seconds", sel, "service"),),
            unit="s",
            legend="{{service}}",
        ),
        Panel(
            "Open connections",
            (f"sum by (entrypoint) (traefik_open_connections{{{sel}}})",),
            legend="{{entrypoint}}",
        ),
    ]


def overview_panels() -> list[Panel]:
    jobs = "|".join(PY_SERVICES)
    sel = f'job=~"{jobs}"'
    return [
        Panel("Up", (f'up{{job=~"{jobs}|gateway"}}',), legend="{{job}}"),
        Panel(
            "Ready (every dependency up)",
            (f"min by (job) (lectern_dependency_up{{{sel}}})",),
            legend="{{job}}",
        ),
        Panel(
            "Requests per second",
            (f"sum by (job) (rate(lectern_http_requests_total{{{sel}}}[1m]))",),
            unit="reqps",
            legend="{{job}}",
        ),
        Panel(
            "p95 latency",
            (p95("lectern_http_request_duration_seconds", sel, "job"),),
            unit="s",
            legend="{{job}}",
        ),
        Panel(
            "Share of 5xx answers",
            (
                f'(sum by (job) (rate(lectern_http_requests_total{{{sel},status=~"5.."}}[5m]))'
                f" or sum by (job) (rate(lectern_http_requests_total{{{sel}}}[5m])) * 0)"
                f" / sum by (job) (rate(lectern_http_requests_total{{{sel}}}[5m]))",
            ),
            unit="percentunit",
            legend="{{job}}",
        ),
        Panel(
            "Time to first token (p95)",
            (p95("lectern_chat_time_to_first_token_seconds", 'job="chat"'),),
            unit="s",
        ),
        Panel(
            "Open answer streams",
            ('sum(lectern_chat_open_streams{job="chat"})',),
        ),
        Panel(
            "Model failures per second",
            (f"sum by (job) (rate(lectern_model_failures_total{{{sel}}}[5m]))",),
            unit="ops",
            legend="{{job}}",
        ),
        Panel(
            "PostgreSQL pool in use (share of max)",
            (
                f'sum by (job) (lectern_db_pool_connections{{{sel},state="in_use"}})'
                f' / sum by (job) (lectern_db_pool_connections{{{sel},state="max"}})',
            ),
            unit="percentunit",
            legend="{{job}}",
        ),
    ]


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict:
    out = []
    for i, panel in enumerate(panels):
        out.append(
            {
                "id": i + 1,
                "type": panel.kind,
                "title": panel.title,
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "targets": [
                    {
                        "refId": chr(ord("A") + n),
                        "datasource": DATASOURCE,
                        "expr": expr,
                        "legendFormat": panel.legend if n == 0 else "",
                    }
                    for n, expr in enumerate(panel.exprs)
                ],
            }
        )
    return {
        "uid": uid,
        "title": title,
        "tags": ["lectern"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": out,
    }


def dashboards() -> dict[str, dict]:
    boards = {"overview": dashboard("lectern-overview", "Lectern overview", overview_panels())}
    extra = {"chat": chat_panels, "summary": summary_panels, "retrieval": retrieval_panels}
    for name in PY_SERVICES:
        panels = service_panels(name) + (extra[name]() if name in extra else [])
        boards[name] = dashboard(f"lectern-{name}", f"Lectern {name}", panels)
    boards["gateway"] = dashboard("lectern-gateway", "Lectern gateway", gateway_panels())
    return boards


def rendered() -> dict[str, str]:
    return {
        f"{name}.json": json.dumps(board, indent=2) + "\n" for name, board in dashboards().items()
    }


def write(folder: Path = OUT) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        (folder / name).write_text(text)
        written.append(folder / name)
    return written


if __name__ == "__main__":
    for path in write():
        print(path.relative_to(REPO_ROOT))
