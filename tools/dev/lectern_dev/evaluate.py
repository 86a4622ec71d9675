"""`lectern eval`: score search on gold question sets — recall@1/5/10 and MRR@10 overall, per
corpus and per kind, for the service's search and (with the admin credential) its BM25, dense
and hybrid legs on the same index in the same run — plus how well the coverage verdict tells
questions the book answers from those it does not.

The sets: `../shared/eval/dev.jsonl` and the project's own questions (`eval/questions/*.jsonl`),
split once, by a hash of each id, into a tuning half and a held-out half: changes are decided
on `dev` and `tune`, and reported on all three.

A result is relevant when its `source_path` is the gold source and its text contains the gold
evidence (whitespace-normalised) or its section is the gold section (ignoring case and inline
markup), the rule of `../shared/eval/README.md`.
"""

from __future__ import annotations

import hashlib
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


@dataclass
class Coverage:
    """How the coverage verdict sorted the questions: unanswerable ones caught, answerable ones
    wrongly refused (`not_covered` for a question the corpora answer)."""

    unanswerable: int = 0
    caught: int = 0
    answerable: int = 0
    refused: int = 0
    refused_ids: list[str] = field(default_factory=list)

    def add(self, item: dict, verdict: str | None) -> None:
        if not item.get("corpus"):
            self.unanswerable += 1
            self.caught += int(verdict == "not_covered")
        else:
            self.answerable += 1
            if verdict == "not_covered":
                self.refused += 1
                self.refused_ids.append(item["id"])

    def as_dict(self) -> dict:
        return {
            "unanswerable": self.unanswerable,
            "caught": self.caught,
            "answerable": self.answerable,
            "wrongly_refused": self.refused,
            "wrongly_refused_share": round(self.refused / max(self.answerable, 1), 3),
            "wrongly_refused_ids": self.refused_ids,
        }


@dataclass(frozen=True)
class Found:
    """One search's answer: its results and its coverage verdict (None when not given)."""

    results: list[dict]
    verdict: str | None = None


Search = Callable[[str], Found]


def http_search(
    client: httpx.Client,
    *,
    path: str = "/api/search",
    top_k: int = 10,
    extra: dict | None = None,
    headers: dict[str, str] | None = None,
) -> Search:
    def search(query: str) -> Found:
        response = client.post(
            path, json={"query": query, "top_k": top_k, **(extra or {})}, headers=headers
        )
        response.raise_for_status()
        body = response.json()
        return Found(body["results"], (body.get("coverage") or {}).get("verdict"))

    return search


def evaluate(gold: list[dict], search: Search, coverage: Coverage | None = None) -> Report:
    """Score every answerable question (corpus set) with the given search function; with
    `coverage`, also ask the unanswerable ones and count the verdicts."""
    report = Report()
    for item in gold:
        if not item.get("corpus"):
            if coverage is not None:
                coverage.add(item, search(item["question"]).verdict)
            continue
        started = time.perf_counter()
        found = search(item["question"])
        report.latencies_ms.append((time.perf_counter() - started) * 1000)
        if coverage is not None:
            coverage.add(item, found.verdict)
        results = found.results
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
QUESTIONS_DIR = REPO_ROOT / "eval" / "questions"
# The published targets, on every set (issue "Retrieval v2").
TARGETS = {"recall@5": 0.92, "mrr@10": 0.80, "corpus recall@5": 0.85, "vague recall@5": 0.80}
MAX_WRONGLY_REFUSED = 0.02
LEGS = ("lexical", "dense", "hybrid")


def split_of(question_id: str) -> str:
    """`tune` or `heldout`, fixed by the id alone so nobody chooses which question goes where."""
    return "tune" if hashlib.sha256(question_id.encode()).digest()[0] % 2 == 0 else "heldout"


def question_sets(gold: Path, questions_dir: Path) -> dict[str, list[dict]]:
    """The named sets: the shared `dev` file, then our own questions' two halves."""
    sets = {"dev": load_gold(gold)}
    own = [q for path in sorted(questions_dir.glob("*.jsonl")) for q in load_gold(path)]
    if own:
        sets["tune"] = [q for q in own if split_of(q["id"]) == "tune"]
        sets["heldout"] = [q for q in own if split_of(q["id"]) == "heldout"]
    return sets


def target_misses(report: Report) -> list[str]:
    """The published targets this report does not reach."""
    overall = report.overall.as_dict()
    misses = [
        f"{metric} {overall[metric]:.3f} < {TARGETS[metric]}"
        for metric in ("recall@5", "mrr@10")
        if overall[metric] < TARGETS[metric]
    ]
    for name, scores in sorted(report.by_corpus.items()):
        value = scores.as_dict()["recall@5"]
        if value < TARGETS["corpus recall@5"]:
            misses.append(f"{name} recall@5 {value:.3f} < {TARGETS['corpus recall@5']}")
    vague = report.by_kind.get("vague")
    if vague is not None and vague.as_dict()["recall@5"] < TARGETS["vague recall@5"]:
        misses.append(f"vague recall@5 {vague.as_dict()['recall@5']:.3f} < 0.8")
    return misses


def format_coverage(coverage: Coverage) -> str:
    d = coverage.as_dict()
    line = (
        f"coverage: {d['caught']} of {d['unanswerable']} unanswerable caught; "
        f"{d['wrongly_refused']} of {d['answerable']} answerable wrongly refused "
        f"({d['wrongly_refused_share']:.1%}, at most {MAX_WRONGLY_REFUSED:.0%})"
    )
    if d["wrongly_refused_ids"]:
        line += ": " + ", ".join(d["wrongly_refused_ids"])
    return line


def run(args) -> int:
    sets = question_sets(Path(args.gold), Path(args.questions_dir))
    admin = {"Authorization": f"Bearer {args.admin_token}"} if args.admin_token else None
    out: dict = {}
    with httpx.Client(base_url=args.url, timeout=30.0) as client:
        client.post("/api/search", json={"query": "warm up", "top_k": 1})
        pipelines: dict[str, Search] = {"lectern": http_search(client, top_k=args.top_k)}
        if admin:
            for leg in LEGS:
                pipelines[leg] = http_search(
                    client,
                    path="/api/admin/search",
                    top_k=args.top_k,
                    extra={"mode": leg},
                    headers=admin,
                )
        for set_name, gold in sets.items():
            for name, search in pipelines.items():
                coverage = Coverage() if name == "lectern" else None
                report = evaluate(gold, search, coverage)
                key = f"{set_name}/{name}"
                out[key] = {**report.as_dict(), "targets_missed": target_misses(report)}
                if coverage is not None:
                    out[key]["coverage"] = coverage.as_dict()
                if not args.json:
                    print(format_report(report, f"{key} ({len(gold)} questions)"))
                    if coverage is not None:
                        print(format_coverage(coverage))
                    if name == "lectern":
                        print("targets missed: " + ("; ".join(target_misses(report)) or "none"))
                    print()
    if args.json:
        print(json.dumps(out, indent=2))
    return 0
