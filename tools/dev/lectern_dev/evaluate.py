"""`lectern eval`: run a gold question file against the search API and report recall@1/5/10,
MRR@10 (per corpus and kind) and latency percentiles.

A result is relevant when its `source_path` is the gold source and its text contains the gold
evidence (whitespace-normalised) or its section is the gold section (ignoring case and inline
markup), the rule of `../shared/eval/README.md`.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lectern_dev import REPO_ROOT

KS = (1, 5, 10)


def normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def normalise_heading(text: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[`*_]+|:[\w:+-]+:", "", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def load_gold(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def relevant(result: dict, gold: dict) -> bool:
    if result.get("source_path") != gold["source"]:
        return False
    evidence = normalise_text(gold.get("evidence") or "")
    if evidence and evidence in normalise_text(result.get("text", "")):
        return True
    return normalise_heading(result.get("section", "")) == normalise_heading(gold["section"])


@dataclass
class Scores:
    n: int = 0
    hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(KS, 0))
    reciprocal: float = 0.0

    def add(self, rank: int | None) -> None:
        self.n += 1
        for k in KS:
            self.hits[k] += int(rank is not None and rank <= k)
        if rank is not None and rank <= 10:
            self.reciprocal += 1.0 / rank

    def as_dict(self) -> dict:
        n = max(self.n, 1)
        return {
            "n": self.n,
            **{f"recall@{k}": round(self.hits[k] / n, 3) for k in KS},
            "mrr@10": round(self.reciprocal / n, 3),
        }


@dataclass
class Report:
    overall: Scores = field(default_factory=Scores)
    by_corpus: dict[str, Scores] = field(default_factory=lambda: defaultdict(Scores))
    by_kind: dict[str, Scores] = field(default_factory=lambda: defaultdict(Scores))
    latencies_ms: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    def latency(self) -> dict:
        values = sorted(self.latencies_ms)
        if not values:
            return {}
        pct = (
            statistics.quantiles(values, n=100, method="inclusive")
            if len(values) > 1
            else values * 99
        )
        return {
            "p50_ms": round(pct[49], 1),
            "p95_ms": round(pct[94], 1),
            "max_ms": round(values[-1], 1),
        }

    def as_dict(self) -> dict:
        return {
            "overall": self.overall.as_dict(),
            "by_corpus": {k: v.as_dict() for k, v in sorted(self.by_corpus.items())},
            "by_kind": {k: v.as_dict() for k, v in sorted(self.by_kind.items())},
            "latency": self.latency(),
            "misses": self.misses,
        }


Search = Callable[[str], list[dict]]


def http_search(
    client: httpx.Client, *, path: str = "/api/search", top_k: int = 10, extra: dict | None = None
) -> Search:
    def search(query: str) -> list[dict]:
        response = client.post(path, json={"query": query, "top_k": top_k, **(extra or {})})
        response.raise_for_status()
        return response.json()["results"]

    return search


def evaluate(gold: list[dict], search: Search) -> Report:
    """Score every answerable question (corpus set) with the given search function."""
    report = Report()
    for item in gold:
        if not item.get("corpus"):
            continue
        started = time.perf_counter()
        results = search(item["question"])
        report.latencies_ms.append((time.perf_counter() - started) * 1000)
        rank = next((i for i, r in enumerate(results[:10], start=1) if relevant(r, item)), None)
        for scores in (
            report.overall,
            report.by_corpus[item["corpus"]],
            report.by_kind[item["kind"]],
        ):
            scores.add(rank)
        if rank is None or rank > 5:
            report.misses.append(item["id"])
    return report


def format_report(report: Report, title: str = "retrieval eval") -> str:
    rows = [("all", report.overall)]
    rows += [(f"corpus={k}", v) for k, v in sorted(report.by_corpus.items())]
    rows += [(f"kind={k}", v) for k, v in sorted(report.by_kind.items())]
    lines = [title, f"{'':22} {'n':>3} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}"]
    for name, scores in rows:
        d = scores.as_dict()
        lines.append(
            f"{name:22} {d['n']:>3} {d['recall@1']:>6.3f} {d['recall@5']:>6.3f} "
            f"{d['recall@10']:>6.3f} {d['mrr@10']:>7.3f}"
        )
    lat = report.latency()
    if lat:
        lines.append(
            f"latency: p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms, "
            f"max {lat['max_ms']} ms over {len(report.latencies_ms)} queries"
        )
    if report.misses:
        lines.append("not in top 5: " + ", ".join(report.misses))
    return "\n".join(lines)


DEFAULT_GOLD = REPO_ROOT.parent / "shared" / "eval" / "dev.jsonl"


def run(args) -> int:
    gold = load_gold(Path(args.gold))
    with httpx.Client(base_url=args.url, timeout=30.0) as client:
        client.post("/api/search", json={"query": "warm up", "top_k": 1})
        report = evaluate(gold, http_search(client, top_k=args.top_k))
    print(
        json.dumps(report.as_dict(), indent=2)
        if args.json
        else format_report(report, f"{args.gold} against {args.url}/api/search")
    )
    return 0
