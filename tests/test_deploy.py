"""Static checks of what cannot run here (no Docker engine): docker-compose.yml, the
Dockerfiles and the Railway configs agree with each other and with the gateway's routes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PY_SERVICES = ("chat", "retrieval", "profile", "summary")
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DYNAMIC = (ROOT / "gateway" / "dynamic.yml").read_text()


def test_every_compose_service_has_a_health_check():
    for name, service in COMPOSE["services"].items():
        assert "healthcheck" in service and service["healthcheck"]["test"], name


def test_only_the_gateway_publishes_ports():
    publishing = [n for n, s in COMPOSE["services"].items() if s.get("ports")]
    assert publishing == ["gateway"]
    admin = [p for p in COMPOSE["services"]["gateway"]["ports"] if p.endswith(":8081")]
    assert admin and all(p.startswith("127.0.0.1:") for p in admin)


def test_depends_on_waits_for_health():
    for name, service in COMPOSE["services"].items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in COMPOSE["services"], (name, dep)
            assert cond == {"condition": "service_healthy"}, (name, dep)


def test_every_routed_service_exists_in_compose():
    gateway_env = COMPOSE["services"]["gateway"]["environment"]
    referenced = set(re.findall(r'env "([A-Z_]+)"', DYNAMIC))
    urls = {name for name in referenced if name.endswith("_URL")}
    assert urls == {"CHAT_URL", "RETRIEVAL_URL", "PROFILE_URL", "SUMMARY_URL", "AUTH_URL"}
    for name in urls:
        host = re.match(r"http://([a-z]+):\d+$", gateway_env[name]).group(1)
        assert host in COMPOSE["services"], name
    # Every variable the routes need without a default is given to the gateway.
    defaulted = set(re.findall(r'env "([A-Z_]+)" \| default', DYNAMIC))
    assert referenced - defaulted <= set(gateway_env)


def test_secrets_are_required_not_defaulted():
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("INTERNAL_TOKEN", "BETTER_AUTH_SECRET", "ADMIN_TOKEN", "POSTGRES_PASSWORD"):
        assert re.search(rf"\$\{{{secret}:\?", text), secret


@pytest.mark.parametrize("service", PY_SERVICES)
def test_python_dockerfiles_are_multistage_slim_nonroot(service: str):
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) >= 2 and all("slim" in s for s in stages)
    assert re.search(r"^USER (?!root)\w+", text, re.MULTILINE)
    assert "HEALTHCHECK" in text
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for path in src.split():
            assert (ROOT / path).exists(), (service, path)
    assert f"lectern_{service}" in text


@pytest.mark.parametrize("folder", [f"services/{s}" for s in PY_SERVICES] + ["gateway"])
def test_railway_config_per_deployable(folder: str):
    config = json.loads((ROOT / folder / "railway.json").read_text())
    assert config["deploy"]["healthcheckPath"].endswith("/health")
    assert (ROOT / config["build"]["dockerfilePath"]).exists()


def test_internal_paths_have_no_route():
    rules = re.findall(r"rule: (.+)", DYNAMIC)
    assert rules and not any("/internal" in rule for rule in rules)
    assert not any(re.search(r"PathPrefix\(`/`\)", rule) for rule in rules)
