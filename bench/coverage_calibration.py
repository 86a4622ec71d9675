"""Coverage calibration without an ingest: parse and chunk both shared corpora as the service
does, build their vocabulary in a temporary `chunk_terms` table (the service's own lexeme
rules), ask the service's own presence query for every question, join the dense leg's best
cosine measured earlier (coverage_features.json) and print the verdicts per set.

    .venv/bin/python bench/coverage_calibration.py /work/shared/corpus \
        ../shared/eval/dev.jsonl eval/questions /work/wt/coverage_features.json
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import asyncpg

from lectern_dev.evaluate import question_sets
from lectern_retrieval import coverage, store
from lectern_retrieval.chunking import chunk_document
from lectern_retrieval.parsing import SUPPORTED_SUFFIXES, parse_document


def corpus_rows(root: Path) -> list[tuple[str, str, str]]:
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                continue
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            parsed = parse_document(rel.as_posix(), path.read_text(errors="replace"))
            for c in chunk_document(
                parsed, source=folder.name, source_path=rel.as_posix(), budget=1200
            ):
                rows.append((parsed.title, " > ".join(c.heading_path), c.text))
    return rows


async def vocabulary(conn: asyncpg.Connection, rows: list[tuple[str, str, str]]) -> None:
    """A temporary chunk_terms with one row per (lexeme, chunk), keyed like the service's, so
    that the presence query's time is measured on as many postings."""
    await conn.execute("CREATE TEMP TABLE chunk_text (n int, title text, headings text, text text)")
    await conn.copy_records_to_table(
        "chunk_text", records=[(n, *row) for n, row in enumerate(rows)]
    )
    names = {
        (name, n)
        for n, (title, headings, text) in enumerate(rows)
        for name in store.identifiers(" ".join([title, headings, text]))
    }
    await conn.execute("CREATE TEMP TABLE chunk_names (lexeme text, chunk_id int)")
    await conn.copy_records_to_table("chunk_names", records=list(names))
    await conn.execute(
        """CREATE TEMP TABLE chunk_terms AS
           SELECT t.lexeme, c.n AS chunk_id FROM chunk_text c,
             unnest(to_tsvector('english', c.title || ' ' || c.headings)
                    || to_tsvector('english', c.text)) t
           UNION SELECT lexeme, chunk_id FROM chunk_names"""
    )
    await conn.execute("ALTER TABLE chunk_terms ADD PRIMARY KEY (lexeme, chunk_id)")
    await conn.execute("ANALYZE chunk_terms")


async def verdicts(
    rows: list[tuple[str, str, str]],
    sets: dict[str, list[dict]],
    dense: dict[tuple[str, str], float],
    dsn: str,
) -> list[dict]:
    conn = await asyncpg.connect(dsn)
    await vocabulary(conn, rows)
    postings = await conn.fetchval("SELECT count(*) FROM chunk_terms")
    out, took = [], []
    for name, questions in sets.items():
        for q in questions:
            terms = coverage.query_terms(q["question"])
            started = time.perf_counter()
            present = await store.terms_present(conn, [t.text for t in terms])
            took.append(time.perf_counter() - started)
            top = dense[(name, q["id"])]
            verdict = coverage.judge(terms, present, top)
            missing = [
                t.text + ("*" if t.specific else "")
                for t in terms
                if not present.get(t.text.lower(), True)
            ]
            out.append(
                {
                    "set": name,
                    "id": q["id"],
                    "answerable": bool(q.get("corpus")),
                    "dense": top,
                    "missing": missing,
                    "verdict": verdict.verdict,
                    "score": verdict.score,
                    "question": q["question"],
                }
            )
    await conn.close()
    took.sort()
    median, p95 = 1000 * took[len(took) // 2], 1000 * took[int(len(took) * 0.95)]
    print(
        f"presence query over {len(rows)} chunks, {postings} postings: "
        f"median {median:.2f} ms, p95 {p95:.2f} ms"
    )
    return out


def main(corpus: Path, gold: Path, own: Path, features: Path, dsn: str) -> None:
    dense = {
        (f["set"], f["id"]): (f["dense"] or [0.0])[0] for f in json.loads(features.read_text())
    }
    sets = question_sets(gold, own)
    out = asyncio.run(verdicts(corpus_rows(corpus), sets, dense, dsn))
    # Every question's verdict and the terms the corpora lack, to read the rule's mistakes.
    Path("/tmp/coverage_calibration.json").write_text(json.dumps(out, indent=1))
    for name in ("dev", "tune", "heldout"):
        rows = [r for r in out if r["set"] == name]
        ans = [r for r in rows if r["answerable"]]
        una = [r for r in rows if not r["answerable"]]
        caught = sum(r["verdict"] == "not_covered" for r in una)
        wrong = sum(r["verdict"] == "not_covered" for r in ans)
        print(
            f"{name}: unanswerable caught {caught}/{len(una)}, "
            f"answerable wrongly refused {wrong}/{len(ans)}"
        )


if __name__ == "__main__":
    corpus, gold, own, features = (Path(a) for a in sys.argv[1:5])
    dsn = sys.argv[5] if len(sys.argv) > 5 else "postgresql://postgres@127.0.0.1:5432/postgres"
    main(corpus, gold, own, features, dsn)
