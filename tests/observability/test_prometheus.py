"""Prometheus, its alert rules and the Grafana dashboards against a real stack: promtool accepts
the configuration and the rules, every dashboard panel's query returns data once the stack has
served some traffic, every alert rule evaluates, and "service not ready" fires for a stopped
service."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import httpx
import pytest
import yaml

from lectern_dev import dashboards
from lectern_dev.harness.chat import ask
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.services import fake_gemini_client, gateway_client
from lectern_dev.stack import Stack

from .conftest import OBS, query

BOARDS = sorted((OBS / "grafana" / "dashboards").glob("*.json"))
RULES = [
    rule
    for group in yaml.safe_load((OBS / "alerts.yml").read_text())["groups"]
    for rule in group["rules"]
]


def panel_queries() -> list[tuple[str, str]]:
    found = []
    for path in BOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                found.append((f"{path.stem}: {panel['title']}", target["expr"]))
    return found


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found (apt-get install prometheus)", pytrace=False)
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules_and_the_configuration(tmp_path):
    rules = promtool("check", "rules", str(OBS / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in rules.stdout
    # The configuration names the rules where the container mounts them; point it at the file.
    config = yaml.safe_load((OBS / "prometheus.yml").read_text())
    config["rule_files"] = [str(OBS / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_files_are_the_generated_ones():
    """`python -m lectern_dev.dashboards` writes them: edit the generator, not the JSON."""
    assert {p.name: p.read_text() for p in BOARDS} == dashboards.rendered()


def drive_traffic(stack: Stack) -> None:
    """Questions (one with a model failure retried), summaries, searches and a few 4xx on
    every service, all through the gateway."""
    with gateway_client(stack) as gateway, fake_gemini_client(stack) as fake:
        fake.post("/_fake/reset")
        fake.post("/_fake/config", json={"fail_next": [500]})
        for question in ("What is a ROS 2 node?", "How do topics work in ROS 2?"):
            answer = ask(gateway, {"message": question})
            assert answer.last.event == "done", answer.events
        chapters = gateway.get("/api/chapters").json()
        chapter = chapters["chapters"][0]["id"]
        for _ in range(2):  # generated, then from the cache
            assert gateway.get(f"/api/summary/chapters/{chapter}").status_code == 200
        for query_text in ("publisher subscriber", "gazebo simulation"):
            found = gateway.post("/api/search", json={"query": query_text})
            assert found.status_code == 200, found.text
        missing = uuid.uuid4()
        assert gateway.get(f"/api/chat/conversations/{missing}").status_code in (401, 404)
        assert gateway.get("/api/summary/chapters/no-such-chapter").status_code == 404
        assert gateway.post("/api/search", json={"query": ""}).status_code == 422
        assert gateway.get("/api/profile/me").status_code in (401, 404)


def empty_panels(prometheus: str) -> list[tuple[str, str]]:
    return [
        (title, expr) for title, expr in panel_queries() if not query(prometheus, expr)["result"]
    ]


def test_every_dashboard_panel_shows_data(prometheus: str, obs_stack: Stack):
    drive_traffic(obs_stack)
    try:
        wait_until(lambda: not empty_panels(prometheus), 45, interval_s=1)
    except TimeoutError:
        pass
    assert empty_panels(prometheus) == []
    assert len(panel_queries()) > 40


@pytest.mark.parametrize("rule", RULES, ids=[r["alert"] for r in RULES])
def test_every_alert_expression_evaluates(prometheus: str, rule: dict):
    query(prometheus, rule["expr"])


def test_prometheus_evaluates_every_rule_without_error(prometheus: str):
    def evaluated() -> list[dict]:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return (
            rules
            if rules and all(r.get("lastEvaluation", "").startswith("2") for r in rules)
            else []
        )

    rules = wait_until(evaluated, 20, interval_s=0.5)
    assert {r["name"] for r in rules} == {r["alert"] for r in RULES}
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []


def test_service_not_ready_fires_when_a_service_stops(prometheus: str, obs_stack: Stack):
    expr = next(r["expr"] for r in RULES if r["alert"] == "LecternServiceNotReady")
    assert not [s for s in query(prometheus, expr)["result"] if s["metric"]["job"] == "summary"]
    obs_stack.processes["summary"].stop()
    try:

        def firing() -> bool:
            return any(s["metric"]["job"] == "summary" for s in query(prometheus, expr)["result"])

        wait_until(firing, 20, interval_s=0.5)

        # Prometheus itself holds the alert (pending until its `for` has passed), from its next
        # rule evaluation on: not always the instant the expression turns true.
        def held() -> bool:
            alerts = query(prometheus, 'ALERTS{alertname="LecternServiceNotReady"}')["result"]
            return any(a["metric"]["job"] == "summary" for a in alerts)

        wait_until(held, 20, interval_s=0.5)
        # The services that call summary stay up; profile's readiness never names summary.
        assert all(s["metric"]["job"] == "summary" for s in query(prometheus, expr)["result"])
    finally:
        obs_stack.restart_service("summary")
