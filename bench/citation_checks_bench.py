"""The cost of the citation checks (services/chat/lectern_chat/citations.py) per answer, in
process: answers of up to 6, 12 and 24 cited sentences over 5 and 10 sources cut from the
sample book at the retrieval's chunk size (1,200 characters), every other sentence cited to
another source than its own. Prints wall time (p50, p95) and CPU time per answer.

Run: `uv run --frozen python bench/citation_checks_bench.py [--runs 2000]`."""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

from lectern_chat import citations

BOOK = Path(__file__).resolve().parents[1] / "book"
CHUNK_CHARS = 1200


def passages(limit: int) -> list[str]:
    """The book's sections in order, each cut to a chunk's size."""
    found = []
    for path in sorted(BOOK.glob("*.md*")):
        for section in path.read_text().split("\n## ")[1:]:
            found.append(section[:CHUNK_CHARS])
    return found[:limit]


def answer_over(sources: list[str], sentences: int) -> str:
    """`sentences` sentences from the sources, every other one cited to the wrong source."""
    picked = []
    for n, passage in enumerate(sources, start=1):
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(passage.split()))[1:4]:
            picked.append((n, sentence.rstrip(".!?")))
    lines = []
    for i, (n, sentence) in enumerate(picked[:sentences]):
        cited = n if i % 2 == 0 else n % len(sources) + 1
        lines.append(f"{sentence} [{cited}].")
    return " ".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    for n_sources, n_sentences in ((5, 6), (5, 12), (10, 24)):
        sources = passages(n_sources)
        answer = answer_over(sources, n_sentences)
        markers = len(citations.claims(answer))
        for _ in range(50):
            citations.check(answer, sources)
        walls = []
        cpu_started = time.process_time()
        for _ in range(args.runs):
            started = time.perf_counter()
            citations.check(answer, sources)
            walls.append((time.perf_counter() - started) * 1000)
        cpu_ms = (time.process_time() - cpu_started) * 1000 / args.runs
        walls.sort()
        print(
            f"{n_sources} sources, {markers} markers: wall p50 {statistics.median(walls):.2f} ms,"
            f" p95 {walls[int(len(walls) * 0.95)]:.2f} ms; CPU {cpu_ms:.2f} ms per answer"
        )


if __name__ == "__main__":
    main()
