"""The cost of the citation checks (services/chat/lectern_chat/citations.py) per answer, in
process: answers of up to 6, 12 and 24 cited sentences over 5 and 10 sources cut from the
sample book at the retrieval's chunk size (1,200 characters), every other sentence cited to
another source than its own. Prints wall time (p50, p95) and CPU time per answer.

`--embeddings` instead scores the calibration pairs (lectern_dev.harness.citation_pairs) with
the retrieval's local model too (all-MiniLM-L6-v2: the sentence as a query, the passage as a
document, cosine) and prints, for each score, the best single threshold and its errors.

Run: `uv run --frozen python bench/citation_checks_bench.py [--runs 2000] [--embeddings]`."""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from pathlib import Path

from lectern_chat import citations
from lectern_dev.harness.citation_pairs import SOURCES, SUPPORTED, UNSUPPORTED

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


def best_threshold(scored: list[tuple[float, bool]]) -> tuple[float, int]:
    """The threshold with the fewest errors (supported below it, unsupported at or above)."""
    best = (0.0, len(scored))
    for threshold in sorted({s for s, _ in scored}):
        errors = sum((s >= threshold) != supported for s, supported in scored)
        best = min(best, (threshold, errors), key=lambda b: b[1])
    return best


async def compare_embeddings() -> None:
    from lectern_retrieval.embeddings import LocalEmbedder

    embedder = LocalEmbedder(threads=1, batch=32)
    pairs = [(s, True) for s in SUPPORTED] + [(s, False) for s in UNSUPPORTED]
    claims = [citations.claims(s)[0] for s, _ in pairs]
    passages = await embedder.embed_documents(SOURCES)
    started = time.perf_counter()
    sentences = await embedder.embed_queries([sentence for _, sentence in claims])
    embed_ms = (time.perf_counter() - started) * 1000 / len(claims)
    lexical = [(citations.check(s, SOURCES)[0].score or 0.0, ok) for s, ok in pairs]
    cosine = [
        (float(vector @ passages[n - 1]), ok)
        for (n, _), vector, (_, ok) in zip(claims, sentences, pairs, strict=True)
    ]
    for name, scored in (("lexical", lexical), ("embedding cosine", cosine)):
        threshold, errors = best_threshold(scored)
        low = [s for s, ok in scored if ok]
        high = [s for s, ok in scored if not ok]
        print(
            f"{name}: supported {min(low):.2f}-{max(low):.2f}, unsupported"
            f" {min(high):.2f}-{max(high):.2f}; best threshold {threshold:.3f} with"
            f" {errors} errors of {len(scored)}"
        )
    print(f"embedding a sentence: {embed_ms:.1f} ms")
    await embedder.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--embeddings", action="store_true")
    args = parser.parse_args()
    if args.embeddings:
        asyncio.run(compare_embeddings())
        return
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
