"""Chunking: chunks follow the headings, stay within the size budget, keep code blocks whole
where they can, and get the same ids from the same content."""

from __future__ import annotations

import re
import uuid

import pytest

from lectern_retrieval.chunking import (
    chunk_document,
    chunk_id,
    embedding_parts,
    plain_text,
    split_section,
)
from lectern_retrieval.parsing import ParsedDoc, Section, parse_markdown

FENCE = "```"


def prose(n: int, topic: str = "robot") -> str:
    """n different sentences (identical ones would be one chunk: duplicates are dropped)."""
    return " ".join(f"The {topic} reads sensor {i} and plans path number {i}." for i in range(n))


def code_block(lines: int) -> str:
    return "\n".join(
        [f"{FENCE}python", *(f"value_{i} = compute({i})" for i in range(lines)), FENCE]
    )


BOOK = parse_markdown(
    f"# Navigation\n\n{prose(12)}\n\n## Maps\n\n{prose(30, 'map')}\n\n"
    f"### Costmaps\n\n{prose(4, 'costmap')}\n\n## Planning\n\n{code_block(8)}\n",
    fallback_title="nav",
)


def chunks(budget: int = 400) -> list:
    return chunk_document(BOOK, source="book", source_path="nav/index.md", budget=budget)


def test_chunks_follow_the_headings() -> None:
    paths = [c.heading_path for c in chunks()]
    assert paths == sorted(paths, key=[s.path for s in BOOK.sections].index)  # document order
    assert set(paths) == {s.path for s in BOOK.sections}
    for chunk in chunks():
        section = next(s for s in BOOK.sections if s.path == chunk.heading_path)
        assert chunk.text in section.text  # a chunk never mixes two sections
        assert chunk.section == chunk.heading_path[-1]


def test_a_section_before_any_heading_is_named_after_the_document() -> None:
    doc = ParsedDoc(title="Launch files", sections=[Section((), "Intro text.")])
    [chunk] = chunk_document(doc, source="book", source_path="launch.md", budget=400)
    assert (chunk.heading_path, chunk.section) == ((), "Launch files")


@pytest.mark.parametrize("budget", [200, 400, 1200])
def test_prose_chunks_respect_the_budget_and_lose_nothing(budget: int) -> None:
    result = chunks(budget)
    # A short tail is joined to the piece before it, up to a quarter over the budget.
    assert all(len(c.text) <= budget * 1.25 for c in result if FENCE not in c.text)
    sentences = re.findall(r"The \w+ reads sensor \d+ and plans path number \d+\.", BOOK.text)
    joined = " ".join(c.text for c in result)
    assert all(sentence in joined for sentence in sentences)


def test_a_smaller_budget_gives_more_chunks() -> None:
    assert len(chunks(200)) > len(chunks(400)) > len(chunks(1200))


def test_ords_count_from_zero_in_document_order() -> None:
    assert [c.ord for c in chunks()] == list(range(len(chunks())))


@pytest.mark.parametrize(
    "lines, budget, pieces",
    [
        (8, 400, 1),  # fits
        (20, 400, 1),  # over the budget but under twice it: kept whole
        (60, 400, 4),  # far over: cut at line ends, each piece re-fenced
    ],
)
def test_code_blocks_stay_whole_unless_far_over_budget(
    lines: int, budget: int, pieces: int
) -> None:
    block = code_block(lines)
    result = split_section(block, budget)
    assert len(result) == pieces
    for piece in result:
        assert piece.startswith(f"{FENCE}python\n") and piece.endswith(f"\n{FENCE}")
        if pieces > 1:  # the code of a cut piece fits the budget; the fences come on top
            assert len(piece) - len(f"{FENCE}python\n\n{FENCE}") <= budget
    code_lines = [line for piece in result for line in piece.split("\n") if FENCE not in line]
    assert code_lines == block.split("\n")[1:-1]  # every line once, in order


def test_a_code_block_is_never_cut_by_the_prose_around_it() -> None:
    text = f"{prose(3)}\n\n{code_block(10)}\n\n{prose(3, 'arm')}"
    for piece in split_section(text, 300):
        assert piece.count(FENCE) % 2 == 0


def test_one_enormous_sentence_is_cut_at_spaces() -> None:
    sentence = " ".join(f"word{i}" for i in range(200))
    pieces = split_section(sentence, 200)
    assert all(len(p) <= 200 for p in pieces)
    assert " ".join(pieces).split() == sentence.split()


def test_ids_are_deterministic_uuids() -> None:
    first, second = chunks(), chunks()
    assert [c.chunk_id for c in first] == [c.chunk_id for c in second]
    assert all(str(uuid.UUID(c.chunk_id)) == c.chunk_id for c in first)
    assert len({c.chunk_id for c in first}) == len(first)


BASE = {"source": "book", "source_path": "a.md", "heading_path": ("A", "B"), "text": "Text."}


@pytest.mark.parametrize(
    "change",
    [
        {"source": "other-book"},
        {"source_path": "b.md"},
        {"heading_path": ("A",)},
        {"heading_path": ("A B",)},
        {"text": "Text!"},
    ],
)
def test_an_id_changes_with_any_part_of_its_content(change: dict) -> None:
    assert chunk_id(**{**BASE, **change}) != chunk_id(**BASE)


def test_the_same_text_twice_in_a_section_is_one_chunk() -> None:
    doc = ParsedDoc(title="T", sections=[Section(("A",), "Same text.\n\nSame text.")])
    assert len(chunk_document(doc, source="s", source_path="p", budget=10)) == 1


@pytest.mark.parametrize(
    "raw, plain",
    [
        ("See [the docs](https://x.y/z).", "See the docs."),
        ("Use :ref:`launch files <launch>` now.", "Use launch files now."),
        ("Read `the guide <https://g.io>`_ first.", "Read the guide first."),
        ("Visit https://ros.org today.", "Visit  today."),
        ("The ``Node`` is **key**.", "The Node is key."),
    ],
)
def test_plain_text_drops_what_an_embedding_should_not_spend_tokens_on(
    raw: str, plain: str
) -> None:
    assert plain_text(raw) == plain


@pytest.mark.parametrize(
    "title, heading_path, heading_line",
    [
        ("Navigation", ("Navigation", "Maps"), "Navigation > Maps"),
        ("Navigation", ("Maps", "Costmaps"), "Navigation > Maps > Costmaps"),
        ("Navigation", (), "Navigation"),
    ],
)
def test_embedding_parts_lead_with_the_title_once(
    title: str, heading_path: tuple[str, ...], heading_line: str
) -> None:
    assert embedding_parts(title=title, heading_path=heading_path, text="x [y](z)") == (
        heading_line,
        "x y",
    )
