"""Static checks of what cannot run here (no Docker engine): docker-compose.yml, the
Dockerfiles and the Railway configs agree with each other, with the files they copy and with the
gateway's routes."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from lectern_chat.settings import ChatSettings
from lectern_dev.stack import AUTH_COMMAND, SECRET_NAMES, SECRETS_OF, auth_command

ROOT = Path(__file__).resolve().parents[1]
PY_SERVICES = ("chat", "retrieval", "profile", "summary")
SERVICE_DOCKERFILE = "deploy/service.Dockerfile"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICE_ENV = COMPOSE["x-service-env"]
DYNAMIC = (ROOT / "gateway" / "dynamic.yml").read_text()


def repo_files(name: str) -> list[str]:
    """Files named like `name` at the top or up to two folders down (gateway/Dockerfile,
    services/chat/railway.json); deeper ones are installed packages' (node_modules, .venv)."""
    found = [*ROOT.glob(name), *ROOT.glob(f"*/{name}"), *ROOT.glob(f"*/*/{name}")]
    return sorted(p.relative_to(ROOT).as_posix() for p in found)


DOCKERFILES = repo_files("*Dockerfile")
RAILWAY_CONFIGS = repo_files("railway.json")


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines = [
        line
        for line in (ROOT / dockerfile).read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def image_env(dockerfile: str) -> dict[str, str]:
    """The ENV names and values of a Dockerfile's last stage (the image that runs)."""
    steps = instructions(dockerfile)
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    env: dict[str, str] = {}
    for keyword, rest in steps[last_from:]:
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def copied_sources(dockerfile: str, args: dict[str, str]) -> list[str]:
    """The build-context paths a Dockerfile COPYs, with its build arguments filled in."""
    sources = []
    for keyword, rest in instructions(dockerfile):
        words = rest.split()
        if keyword != "COPY" or any(w.startswith("--from") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")][:-1]
        for path in paths:
            sources.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], path))
    return sources


def service_port(name: str) -> str:
    """The port the other services reach `name` on (its URL in the shared environment)."""
    return re.fullmatch(rf"http://{name}:(\d+)", SERVICE_ENV[f"{name.upper()}_URL"]).group(1)


def test_every_compose_service_has_a_health_check():
    for name, service in COMPOSE["services"].items():
        assert "healthcheck" in service and service["healthcheck"]["test"], name


OBSERVABILITY = ("prometheus", "grafana")


def test_only_the_gateway_publishes_ports():
    """…and the observability profile's Prometheus and Grafana, on loopback only."""
    publishing = [n for n, s in COMPOSE["services"].items() if s.get("ports")]
    assert publishing == ["gateway", *OBSERVABILITY]
    for name in OBSERVABILITY:
        assert all(p.startswith("127.0.0.1:") for p in COMPOSE["services"][name]["ports"])
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
    # The Python services' servers come from one loop: <NAME>_URLS if set, else <NAME>_URL.
    looped = re.search(r'range \$name := list ((?:"[a-z]+" ?)+)', DYNAMIC)
    assert looped, "the services' loop in gateway/dynamic.yml"
    referenced |= {f"{name.upper()}_URL" for name in re.findall(r'"([a-z]+)"', looped.group(1))}
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


def test_every_compose_build_names_a_dockerfile_that_exists():
    built = {n: s["build"] for n, s in COMPOSE["services"].items() if "build" in s}
    assert set(PY_SERVICES) | {"auth", "gateway"} <= set(built)
    for name, build in built.items():
        assert build["context"] == ".", name
        assert (ROOT / build["dockerfile"]).is_file(), (name, build["dockerfile"])


@pytest.mark.parametrize("service", PY_SERVICES)
def test_python_services_build_the_one_image_with_their_name_and_port(service: str):
    build = COMPOSE["services"][service]["build"]
    assert build["dockerfile"] == SERVICE_DOCKERFILE
    assert build["args"] == {"SERVICE": service, "PORT": service_port(service)}


def test_the_python_image_is_multistage_slim_nonroot_and_parameterised():
    steps = instructions(SERVICE_DOCKERFILE)
    stages = [rest.split()[0] for keyword, rest in steps if keyword == "FROM"]
    assert len(stages) >= 2 and all("slim" in s for s in stages)
    assert any(k == "USER" and rest not in ("root", "0") for k, rest in steps)
    assert any(k == "HEALTHCHECK" for k, _ in steps)
    declared = {rest.split("=")[0] for keyword, rest in steps if keyword == "ARG"}
    assert {"SERVICE", "PORT"} <= declared
    assert any("--package lectern-${SERVICE}" in rest for k, rest in steps if k == "RUN")
    env = image_env(SERVICE_DOCKERFILE)
    # The start script and the health check read these.
    assert env["LECTERN_SERVICE"] == "${SERVICE}" and env["PORT"] == "${PORT}"
    start = [rest for keyword, rest in steps if keyword == "CMD"]
    assert start == ['["/app/serve.sh"]']
    script = ROOT / "deploy" / "serve.sh"
    assert os.access(script, os.X_OK)
    assert "LECTERN_SERVICE" in script.read_text() and "PORT" in script.read_text()


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_path_a_dockerfile_copies_exists(dockerfile: str):
    arg_sets = (
        [{"SERVICE": s, "PORT": service_port(s)} for s in PY_SERVICES]
        if dockerfile == SERVICE_DOCKERFILE
        else [{}]
    )
    for args in arg_sets:
        sources = copied_sources(dockerfile, args)
        assert sources, dockerfile
        for path in sources:
            assert (ROOT / path).exists(), (dockerfile, args, path)


def test_the_python_image_holds_the_reader_page_where_chat_looks(
    monkeypatch: pytest.MonkeyPatch,
):
    env = image_env(SERVICE_DOCKERFILE)
    copies = [rest.split() for keyword, rest in instructions(SERVICE_DOCKERFILE)]
    assert ["web", env["CHAT_WEB_DIR"]] in copies
    monkeypatch.setenv("CHAT_WEB_DIR", env["CHAT_WEB_DIR"])
    assert ChatSettings().web_dir == Path(env["CHAT_WEB_DIR"])
    # Outside the image, chat serves the checkout's own web/ folder.
    monkeypatch.delenv("CHAT_WEB_DIR")
    assert ChatSettings().web_dir == ROOT / "web"
    assert (ROOT / "web" / "index.html").is_file()


def test_a_railway_config_per_deployable():
    folders = {str(Path(c).parent) for c in RAILWAY_CONFIGS}
    assert folders == {f"services/{s}" for s in PY_SERVICES} | {"services/auth", "gateway"}


@pytest.mark.parametrize("config_path", RAILWAY_CONFIGS)
def test_railway_configs_build_a_dockerfile_that_exists(config_path: str):
    config = json.loads((ROOT / config_path).read_text())
    folder = Path(config_path).parent
    assert config["build"]["builder"] == "DOCKERFILE"
    assert (ROOT / config["build"]["dockerfilePath"]).is_file(), config_path
    health = config["deploy"]["healthcheckPath"]
    if folder.parent.as_posix() == "services" and folder.name in PY_SERVICES:
        assert config["build"]["dockerfilePath"] == SERVICE_DOCKERFILE
        assert health == "/health"
    elif folder.name == "auth":
        assert health == "/api/auth/ok"
    else:
        assert health.endswith("/health"), config_path


def test_internal_paths_have_no_route():
    rules = re.findall(r"rule: (.+)", DYNAMIC)
    assert rules and not any("/internal" in rule for rule in rules)
    # The one catch-all route answers the gateway's 404 envelope: whatever the path, it reaches
    # profile rewritten to /errors/404.
    catch_all = re.findall(
        r"rule: PathPrefix\(`/`\)\n\s+service: (\w+)\n\s+middlewares: \[([^\]]*)\]", DYNAMIC
    )
    assert [(service, "not-found-page" in chain) for service, chain in catch_all] == [
        ("profile", True)
    ]
    assert re.search(r"not-found-page:\n\s+replacePath:\n\s+path: /errors/404\n", DYNAMIC)


def test_python_services_get_past_their_drain_before_docker_kills_them():
    """On SIGTERM a service lets open answers finish for SHUTDOWN_GRACE_S (20 s) after a 1 s
    notice; Docker's default 10 s would SIGKILL it half way and cut the streams."""
    for name in ("chat", "retrieval", "profile", "summary"):
        period = COMPOSE["services"][name].get("stop_grace_period", "10s")
        assert period.endswith("s") and float(period[:-1]) > 21, (name, period)


def test_the_python_image_listens_on_all_ipv4_interfaces_unless_told_otherwise():
    script = (ROOT / "deploy" / "serve.sh").read_text()
    assert '"${prefix}_HOST=${LISTEN_HOST:-0.0.0.0}"' in script


def deploy_table() -> dict[str, dict[str, bool]]:
    """docs/deploy.md's "which variable goes where" table: variable cell -> column -> ticked."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text.split("## Railway: which variable goes where", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    table = {}
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        table[cells[0]] = {
            col: "✓" in cell for col, cell in zip(header[1:], cells[1:], strict=True)
        }
    return table


def test_the_deploy_guide_gives_each_secret_to_exactly_the_processes_that_use_it():
    table = deploy_table()
    for secret in (*SECRET_NAMES, "GEMINI_API_KEY"):
        if secret == "GATEWAY_DASHBOARD_PASSWORD":  # the gateway gets its hashed line instead
            continue
        if secret == "REDIS_PASSWORD":  # lectern run's own Redis; deployed, it is in REDIS_URL
            continue
        [row] = [cells for name, cells in table.items() if f"`{secret}`" in name]
        given = {process for process, ticked in row.items() if ticked}
        assert given == {p for p, names in SECRETS_OF.items() if secret in names}, secret
    # Every process that opens PostgreSQL is given the (pooled) URL; the gateway never is.
    [database] = [cells for name, cells in table.items() if "`DATABASE_URL`" in name]
    assert {p for p, ticked in database.items() if ticked} == {"auth", *PY_SERVICES}
    [redis] = [cells for name, cells in table.items() if "`REDIS_URL`" in name]
    assert {p for p, ticked in redis.items() if ticked} == {"chat", "summary"}


def test_the_gateway_makes_no_calls_home() -> None:
    static = yaml.safe_load((ROOT / "gateway" / "traefik.yml").read_text())
    assert static["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}


OBS = ROOT / "deploy" / "observability"


def test_prometheus_and_grafana_run_under_the_observability_profile_only():
    env_example = (ROOT / "deploy" / "compose.env.example").read_text()
    assert "GRAFANA_ADMIN_PASSWORD=" in env_example
    for name, service in COMPOSE["services"].items():
        assert (service.get("profiles") == ["observability"]) == (name in OBSERVABILITY), name
    mounts = [v.split(":")[0] for n in OBSERVABILITY for v in COMPOSE["services"][n]["volumes"]]
    for mount in mounts:
        if mount.startswith("./"):
            assert (ROOT / mount).exists(), mount


def test_prometheus_scrapes_every_python_service_and_the_gateway_on_their_ports():
    config = yaml.safe_load((OBS / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets == {
        **{name: [f"{name}:{service_port(name)}"] for name in PY_SERVICES},
        "gateway": ["gateway:8081"],
    }


def test_grafana_dashboards_parse_and_are_provisioned():
    boards = sorted((OBS / "grafana" / "dashboards").glob("*.json"))
    names = {p.stem for p in boards}
    assert names == {"overview", "gateway", *PY_SERVICES}
    uids = set()
    for path in boards:
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        assert board["panels"], path.name
        for panel in board["panels"]:
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    assert len(uids) == len(boards)
    provider = yaml.safe_load(
        (OBS / "grafana" / "provisioning" / "dashboards" / "lectern.yml").read_text()
    )
    mounted = [v for v in COMPOSE["services"]["grafana"]["volumes"] if "grafana/dashboards" in v]
    assert mounted[0].split(":")[1] == provider["providers"][0]["options"]["path"]


def test_the_auth_image_starts_node_as_the_local_stack_does():
    """One way to start the auth server (lectern_dev.stack.AUTH_COMMAND, with its V8 flags):
    the image's CMD and `npm start` run the same command line as `make run` and the tests."""
    cmd = [rest for keyword, rest in instructions("services/auth/Dockerfile") if keyword == "CMD"]
    assert [json.loads(c) for c in cmd] == [list(AUTH_COMMAND)]
    package = json.loads((ROOT / "services" / "auth" / "package.json").read_text())
    assert shlex.split(package["scripts"]["start"]) == list(AUTH_COMMAND)
    assert auth_command()[:-1] == list(AUTH_COMMAND[:-1])
    assert auth_command()[-1].endswith("/services/auth/server.mjs")
