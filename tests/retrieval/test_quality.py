"""Retrieval quality on the shared gold set: both corpora in one index with the local embedder,
scored through the gateway, against a plain BM25 baseline over the very same chunks; and the
unchanged re-ingest that must compute nothing."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import httpx
import pytest

from lectern_dev.evaluate import Found, Report, evaluate, format_report, http_search, load_gold
from lectern_dev.harness.books import ingest_folder
from lectern_dev.harness.database import run_sql
from lectern_dev.stack import Stack

# The first ingest embeds ~3,650 chunks on the CPU: minutes, not the default 300 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def gold(shared_dir: Path) -> list[dict]:
    return load_gold(shared_dir / "eval" / "dev.jsonl")


def _chunk_rows(database_url: str) -> list[dict]:
    return run_sql(
        database_url,
        """SELECT c.chunk_id::text AS chunk_id, d.source_path, c.section, c.text
             FROM retrieval.chunks c JOIN retrieval.documents d USING (chapter_id)
            WHERE d.source IN ('gazebo', 'ros2')""",
    )


class PlainBM25:
    """Okapi BM25 (k1 1.2, b 0.75) over lower-cased words: no stemming, no field weights."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.docs = [Counter(self.words(r["text"])) for r in rows]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg = sum(self.lengths) / len(self.lengths)
        df = Counter(w for d in self.docs for w in d)
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}

    @staticmethod
    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9_]+", text.lower())

    def search(self, query: str) -> Found:
        terms = [w for w in set(self.words(query)) if w in self.idf]
        scores = []
        for i, doc in enumerate(self.docs):
            norm = 1.2 * (0.25 + 0.75 * self.lengths[i] / self.avg)
            score = sum(self.idf[w] * doc[w] * 2.2 / (doc[w] + norm) for w in terms if w in doc)
            if score:
                scores.append((score, i))
        return Found([self.rows[i] for _, i in sorted(scores, reverse=True)[:10]])


@pytest.fixture(scope="module")
def reports(local_stack: Stack, corpora: dict, gold: list[dict]) -> tuple[Report, Report]:
    """(hybrid through the gateway, plain BM25 on the same chunks) over the gold questions."""
    assert corpora["gazebo"]["files"] >= 50 and corpora["ros2"]["files"] >= 250
    assert corpora["gazebo"]["chunks"] + corpora["ros2"]["chunks"] > 3000
    with httpx.Client(base_url=local_stack.gateway_url, timeout=30.0) as client:
        hybrid = evaluate(gold, http_search(client))
    baseline = evaluate(gold, PlainBM25(_chunk_rows(local_stack.database_url)).search)
    print(format_report(hybrid, "hybrid (gateway /api/search)"))
    print(format_report(baseline, "plain BM25 baseline"))
    assert hybrid.overall.n == 27
    return hybrid, baseline


def test_both_corpora_beat_the_bm25_baseline(reports: tuple[Report, Report]) -> None:
    hybrid, baseline = reports
    assert recall5(hybrid) > recall5(baseline)
    assert hybrid.overall.as_dict()["mrr@10"] > baseline.overall.as_dict()["mrr@10"]


def test_recall_at_5_meets_the_target(reports: tuple[Report, Report]) -> None:
    """The target is 0.85 (23 of 27); 0.889 (24 of 27) was measured (docs/RETRIEVAL.md)."""
    hybrid, _ = reports
    assert recall5(hybrid) >= 0.85, hybrid.misses


def recall5(report: Report) -> float:
    return report.overall.as_dict()["recall@5"]


def test_unchanged_reingest_computes_nothing(
    local_stack: Stack, corpora: dict, shared_dir: Path
) -> None:
    for name, first in corpora.items():
        again = ingest_folder(local_stack, shared_dir / "corpus" / name, name)
        # Nothing embedded again (how much faster that is: bench/search_bench.py, `speedup`).
        assert again["embeddings_computed"] == 0
        assert (again["new"], again["updated"], again["removed"]) == (0, 0, 0)
        assert again["unchanged"] == first["files"] and again["chunks"] == first["chunks"]
