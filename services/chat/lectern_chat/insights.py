"""What the book does not answer, for its authors: over a period, how many questions each
chapter was cited for, the questions the book did not cover (near-duplicates grouped, with
counts), the answers readers rated down with their comments, and the share of unsupported
citations. Readers appear only as an opaque id (an HMAC of the conversation's owner)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

# The question an answer replies to: the last user message before it in its conversation.
_QUESTION = """
    LEFT JOIN LATERAL (
        SELECT q.content FROM chat.messages q
        WHERE q.conversation_id = m.conversation_id AND q.role = 'user'
          AND q.created_at < m.created_at
        ORDER BY q.created_at DESC LIMIT 1
    ) question ON true
    JOIN chat.conversations c ON c.id = m.conversation_id
"""

# Words that say nothing about what was asked: left out when questions are compared.
_STOPWORDS = frozenset(
    "a an and are can could do does for from how i if in is it me my of on onto or should the "
    "to use what when where which who why will with would you your there this that into".split()
)
_WORD = re.compile(r"\w+")
ANSWER_EXCERPT_CHARS = 500


@dataclass(frozen=True)
class Period:
    days: int
    since: datetime
    until: datetime

    @classmethod
    def last(cls, days: int) -> Period:
        until = datetime.now(UTC)
        return cls(days=days, since=until - timedelta(days=days), until=until)


def opaque_reader(owner: str, key: bytes) -> str:
    """A stable id for the owner of a conversation that does not say who they are."""
    return hmac.new(key, b"insights:" + owner.encode(), hashlib.sha256).hexdigest()[:16]


def words(text: str) -> frozenset[str]:
    """The question's content words, normalised (NFKC, case-folded, punctuation dropped)."""
    normal = unicodedata.normalize("NFKC", text).casefold()
    return frozenset(w for w in _WORD.findall(normal) if w not in _STOPWORDS)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def group_questions(rows: list[dict], *, threshold: float) -> list[dict]:
    """Near-duplicate questions (newest first in `rows`) gathered under the first of each group:
    a question joins the group whose first question's words it overlaps most, when that
    overlap reaches `threshold`; groups by count, then most recent. Only groups sharing a word
    with the question are compared (an index from word to groups), so thousands of distinct
    questions do not cost a comparison with every group."""
    groups: list[dict] = []
    by_word: dict[str, list[int]] = {}
    for row in rows:
        # A question of stop words only is compared by its whole text.
        bag = words(row["question"]) or frozenset({row["question"].casefold().strip()})
        shared = Counter(i for word in bag for i in by_word.get(word, ()))
        best, best_score = None, threshold
        for i, common in sorted(shared.items()):
            # Jaccard: the words both share over all words of the two, shared counted above.
            score = common / (len(bag) + len(groups[i]["_words"]) - common)
            if score >= best_score:
                best, best_score = groups[i], score
        if best is None:
            best = {
                "question": row["question"],
                "query": row["query"],
                "count": 0,
                "readers": set(),
                "variants": [],
                "last_asked": row["created_at"],
                "_words": bag,
            }
            for word in bag:
                by_word.setdefault(word, []).append(len(groups))
            groups.append(best)
        best["count"] += 1
        best["readers"].add(row["reader"])
        if row["question"] not in best["variants"] and len(best["variants"]) < 5:
            best["variants"].append(row["question"])
    groups.sort(key=lambda g: (-g["count"], -g["last_asked"].timestamp()))
    return [
        {**{k: v for k, v in g.items() if not k.startswith("_")}, "readers": len(g["readers"])}
        for g in groups
    ]


async def chapter_citations(pool: asyncpg.Pool, period: Period) -> list[dict]:
    """Per chapter, how many answered questions cited one of its passages."""
    rows = await pool.fetch(
        "SELECT s->>'chapter_id' AS chapter_id, max(s->>'title') AS title,"
        " count(DISTINCT m.id) AS questions"
        " FROM chat.messages m CROSS JOIN LATERAL jsonb_array_elements(m.sources) s"
        " WHERE m.role = 'assistant' AND m.status = 'complete'"
        " AND m.created_at >= $1 AND m.created_at < $2"
        " AND (s->>'n')::int = ANY(m.citations)"
        " GROUP BY 1 ORDER BY questions DESC, chapter_id",
        period.since,
        period.until,
    )
    return [dict(r) for r in rows]


async def uncovered_questions(
    pool: asyncpg.Pool, period: Period, *, key: bytes, limit: int
) -> list[dict]:
    """The questions the search (or the answerer) judged the book does not cover, newest
    first."""
    rows = await pool.fetch(
        f"SELECT question.content AS question, m.query, m.created_at, c.owner"  # noqa: S608
        f" FROM chat.messages m {_QUESTION}"
        " WHERE m.role = 'assistant' AND m.status = 'complete'"
        " AND (m.coverage = 'not_covered' OR m.finish_reason = 'not_covered')"
        " AND m.created_at >= $1 AND m.created_at < $2 AND question.content IS NOT NULL"
        " ORDER BY m.created_at DESC LIMIT $3",
        period.since,
        period.until,
        limit,
    )
    return [
        {
            "question": r["question"],
            "query": r["query"],
            "created_at": r["created_at"],
            "reader": opaque_reader(r["owner"], key),
        }
        for r in rows
    ]


async def down_rated(pool: asyncpg.Pool, period: Period, *, key: bytes, limit: int) -> list[dict]:
    """The answers rated down in the period, with the reader's comment, newest first."""
    rows = await pool.fetch(
        f"SELECT m.id, question.content AS question, left(m.content, $4) AS answer,"  # noqa: S608
        " m.feedback_comment, m.feedback_at, m.citations, m.sources, c.owner"
        f" FROM chat.messages m {_QUESTION}"
        " WHERE m.role = 'assistant' AND m.feedback = 'down'"
        " AND m.feedback_at >= $1 AND m.feedback_at < $2"
        " ORDER BY m.feedback_at DESC LIMIT $3",
        period.since,
        period.until,
        limit,
        ANSWER_EXCERPT_CHARS,
    )
    return [
        {
            "message_id": r["id"],
            "question": r["question"] or "",
            "answer": r["answer"],
            "comment": r["feedback_comment"],
            "rated_at": r["feedback_at"],
            "reader": opaque_reader(r["owner"], key),
            "chapters": sorted(
                {s["chapter_id"] for s in r["sources"] if s.get("n") in r["citations"]}
            ),
        }
        for r in rows
    ]


async def unsupported_citation_share(pool: asyncpg.Pool, period: Period) -> dict:
    """Of the citation markers checked in the period, how many their passage did not support
    (`share` is None while nothing was checked). Reads `messages.citation_checks`, one
    {"n", "supported", "score"} per marker, written by the citation checks (issue 15)."""
    row = await pool.fetchrow(
        "SELECT count(*) AS checked,"
        " count(*) FILTER (WHERE NOT coalesce((x->>'supported')::boolean, false)) AS unsupported"
        " FROM chat.messages m CROSS JOIN LATERAL jsonb_array_elements(m.citation_checks) x"
        " WHERE m.role = 'assistant' AND jsonb_typeof(m.citation_checks) = 'array'"
        " AND m.created_at >= $1 AND m.created_at < $2",
        period.since,
        period.until,
    )
    checked, unsupported = row["checked"], row["unsupported"]
    return {
        "checked": checked,
        "unsupported": unsupported,
        "share": round(unsupported / checked, 4) if checked else None,
    }


async def report(
    pool: asyncpg.Pool, period: Period, *, key: bytes, limit: int, threshold: float
) -> dict:
    """The whole view; its four queries run at once, each on its own pooled connection."""
    chapters, uncovered, rated, citations = await asyncio.gather(
        chapter_citations(pool, period),
        uncovered_questions(pool, period, key=key, limit=limit),
        down_rated(pool, period, key=key, limit=limit),
        unsupported_citation_share(pool, period),
    )
    return {
        "period": {"days": period.days, "since": period.since, "until": period.until},
        "chapters": chapters,
        "uncovered": {
            "questions": len(uncovered),
            "groups": group_questions(uncovered, threshold=threshold),
        },
        "down_rated": rated,
        "citations": citations,
    }


CSV_COLUMNS = (
    "section",
    "chapter_id",
    "title",
    "text",
    "count",
    "readers",
    "reader",
    "comment",
    "at",
)


def _cell(value: object) -> str:
    """A spreadsheet cell that cannot run as a formula (readers wrote some of these)."""
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_csv(data: dict) -> str:
    """The report as one table: a row per chapter, uncovered group, down-rated answer, and the
    unsupported-citation share, told apart by `section`."""
    rows: list[tuple] = [
        ("chapter", c["chapter_id"], c["title"], "", c["questions"], "", "", "", "")
        for c in data["chapters"]
    ]
    rows += [
        ("uncovered", "", "", g["question"], g["count"], g["readers"], "", "", g["last_asked"])
        for g in data["uncovered"]["groups"]
    ]
    rows += [
        (
            "down_rated",
            " ".join(d["chapters"]),
            "",
            d["question"],
            1,
            1,
            d["reader"],
            d["comment"],
            d["rated_at"],
        )
        for d in data["down_rated"]
    ]
    share = data["citations"]
    rows.append(
        ("unsupported_citations", "", "", share["share"], share["unsupported"], "", "", "", "")
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()
