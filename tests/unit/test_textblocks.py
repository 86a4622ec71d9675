"""Summary's text blocks: code and formulas leave for the model as markers and come back to the
reader verbatim, however the model's output is cut into pieces; long chapters go in parts that
fit the input budget."""

from __future__ import annotations

import pytest

from lectern_common.contracts import Chapter, ChapterSection
from lectern_summary.textblocks import Block, Restorer, blocks, parts, protect

FENCE = "```"
CODE = f"{FENCE}python\nx = 1\n\ny = 2\n{FENCE}"
FORMULA = "$$\na^2 + b^2 = c^2\n$$"


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(
            "One\nline two.\n\nThree.",
            [Block("One\nline two.", False), Block("Three.", False)],
            id="paragraphs split at blank lines",
        ),
        pytest.param(
            f"Before.\n\n{CODE}\n\nAfter.",
            [Block("Before.", False), Block(CODE, True), Block("After.", False)],
            id="a fence is one block, blank lines inside it included",
        ),
        pytest.param(
            f"Text.\n{FORMULA}\nMore.",
            [Block("Text.", False), Block(FORMULA, True), Block("More.", False)],
            id="a display formula is protected",
        ),
        pytest.param(
            "$$E = mc^2$$",
            [Block("$$E = mc^2$$", True)],
            id="a one-line formula is protected",
        ),
        pytest.param(
            "~~~~\ncode ``` inside\n~~~~",
            [Block("~~~~\ncode ``` inside\n~~~~", True)],
            id="tilde fences close only on tildes",
        ),
        pytest.param(
            f"{FENCE}\nnever closed\nstill code",
            [Block(f"{FENCE}\nnever closed\nstill code", True)],
            id="an unclosed fence runs to the end",
        ),
        pytest.param("\n\n  \n", [], id="only blank lines: no blocks"),
    ],
)
def test_blocks(text: str, expected: list[Block]) -> None:
    assert blocks(text) == expected


def test_protect_swaps_each_protected_block_for_a_numbered_marker() -> None:
    text, codes = protect(f"Intro.\n\n{CODE}\n\nMiddle.\n\n{FORMULA}")
    assert text == "Intro.\n\n[[CODE 1]]\n\nMiddle.\n\n[[CODE 2]]"
    assert codes == [CODE, FORMULA]


def restore(codes: list[str], pieces: list[str]) -> str:
    restorer = Restorer(codes)
    return "".join(restorer.feed(piece) for piece in pieces) + restorer.finish()


@pytest.mark.parametrize(
    "pieces",
    [
        ["Here: [[CODE 1]] done."],
        ["Here: [[CO", "DE 1]] done."],
        ["Here: [", "[", "C", "O", "D", "E", " ", "1", "]", "] done."],
        ["Here: [[CODE 1", "]] done."],
    ],
    ids=["whole", "cut in the word", "one character a piece", "cut before the brackets"],
)
def test_a_marker_cut_across_pieces_is_still_restored(pieces: list[str]) -> None:
    assert restore([CODE], pieces) == f"Here: \n{CODE}\n done."


def test_text_is_released_as_soon_as_it_cannot_be_a_marker() -> None:
    restorer = Restorer([CODE])
    assert restorer.feed("Plain words [") == "Plain words "
    assert restorer.feed("see note]") == "[see note]"


def test_blocks_the_model_left_out_are_appended_in_order() -> None:
    out = restore([CODE, FORMULA, "$$z$$"], ["Only [[CODE 2]] used."])
    assert out == f"Only \n{FORMULA}\n used.\n\n{CODE}\n\n$$z$$\n"


def test_a_marker_for_a_block_that_does_not_exist_is_dropped() -> None:
    assert restore([CODE], ["A [[CODE 7]] B [[CODE 1]]"]) == f"A  B \n{CODE}\n"


def test_a_block_used_twice_is_placed_twice_and_not_appended() -> None:
    out = restore([CODE], ["[[CODE 1]] and again [[CODE 1]]"])
    assert out.count(CODE) == 2


def chapter(sections: list[tuple[str, str]]) -> Chapter:
    text = "\n\n".join(f"## {h}\n\n{t}" if h else t for h, t in sections)
    return Chapter(
        id="nav",
        title="Navigation",
        url="/docs/nav",
        source_path="nav.md",
        source="book",
        content_hash="h",
        text=text,
        sections=[ChapterSection(heading=h, text=t) for h, t in sections],
    )


def paragraph(n: int, size: int = 90) -> str:
    return f"Paragraph {n} " + "x" * (size - len(f"Paragraph {n} "))


def test_a_chapter_within_budget_is_one_part_unchanged() -> None:
    ch = chapter([("Intro", "Short."), ("More", "Also short.")])
    assert parts(ch, budget=10_000) == [ch.text]


def test_parts_are_cut_between_sections_and_fit_the_budget() -> None:
    sections = [(f"S{i}", "\n\n".join(paragraph(10 * i + j) for j in range(3))) for i in range(6)]
    result = parts(chapter(sections), budget=700)
    assert len(result) > 1
    assert all(len(p) <= 700 for p in result)
    for part in result:  # every section stays whole, with its heading
        for heading, text in sections:
            if f"## {heading}\n" in part:
                assert text in part
    assert "\n\n".join(result).count("## S") == len(sections)


def test_an_over_long_section_is_cut_between_paragraphs() -> None:
    long_text = "\n\n".join(paragraph(j) for j in range(20))
    result = parts(chapter([("Long", long_text)]), budget=500)
    assert len(result) >= 4
    assert all(len(p) <= 500 for p in result)
    assert result[0].startswith("## Long\n\n")
    for j in range(20):
        assert sum(paragraph(j) in p for p in result) == 1


def test_a_single_block_larger_than_the_budget_stays_whole() -> None:
    big = f"{FENCE}\n" + "\n".join("line of code" for _ in range(100)) + f"\n{FENCE}"
    result = parts(chapter([("Code", f"Before.\n\n{big}\n\nAfter.")]), budget=300)
    assert big in result
