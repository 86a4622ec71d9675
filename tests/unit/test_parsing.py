"""Markdown/MDX and reStructuredText parsing: what a reader sees is kept (text, code, headings),
what a reader never sees is dropped (front matter, imports, JSX tags, comments, boilerplate)."""

from __future__ import annotations

import pytest

from lectern_retrieval.parsing import ParseError, Section, clean_heading, parse_document

FENCE = "```"


def sections(path: str, text: str) -> list[tuple[tuple[str, ...], str]]:
    return [(s.path, s.text) for s in parse_document(path, text).sections]


@pytest.mark.parametrize(
    "source, expected",
    [
        pytest.param(
            "---\ntitle: Getting started\nsidebar_position: 2\n---\n# Intro\n\nWelcome.\n",
            [(("Intro",), "Welcome.")],
            id="front matter stripped",
        ),
        pytest.param(
            "# Top\n\nA.\n\n## Middle\n\nB.\n\n### Low\n\nC.\n\n## Second\n\nD.\n",
            [
                (("Top",), "A."),
                (("Top", "Middle"), "B."),
                (("Top", "Middle", "Low"), "C."),
                (("Top", "Second"), "D."),
            ],
            id="headings nest and a sibling closes the deeper ones",
        ),
        pytest.param(
            "Before any heading.\n\n# First\n\nAfter.\n",
            [((), "Before any heading."), (("First",), "After.")],
            id="text before the first heading has no path",
        ),
        pytest.param(
            "# Empty\n\n## Filled\n\nText.\n",
            [(("Empty", "Filled"), "Text.")],
            id="a heading with no text of its own gives no section",
        ),
        pytest.param(
            "import Tabs from '@theme/Tabs';\nimport TabItem from '@theme/TabItem';\n"
            'export const meta = {};\n\n# Install\n\n<Tabs>\n<TabItem value="apt">\n\n'
            "Use apt.\n\n</TabItem>\n</Tabs>\n",
            [(("Install",), "Use apt.")],
            id="MDX imports, exports and JSX tag lines dropped, their children kept",
        ),
        pytest.param(
            '# Img\n\n<img\n  src="a.png"\n  alt="a"\n/>\n\nCaption.\n',
            [(("Img",), "Caption.")],
            id="a JSX tag over several lines dropped",
        ),
        pytest.param(
            "# C\n\nSeen <!-- hidden --> here.\n{/* mdx note */}\nEnd.\n",
            [(("C",), "Seen  here.\n\nEnd.")],
            id="inline HTML and MDX comments dropped",
        ),
        pytest.param(
            "# C\n\n<!--\nwhole\nblock\n-->\nEnd.\n",
            [(("C",), "End.")],
            id="a comment over several lines dropped",
        ),
        pytest.param(
            f"# Code\n\n{FENCE}python\nimport rclpy\n# not a heading\n<Node />\n{FENCE}\n",
            [(("Code",), f"{FENCE}python\nimport rclpy\n# not a heading\n<Node />\n{FENCE}")],
            id="code kept verbatim: no heading, import or tag inside it is touched",
        ),
        pytest.param(
            "# A\n\n:::tip Fast path\nUse the binary.\n:::\n\n:::note\nMind.\n:::\n",
            [(("A",), "Tip: Fast path\nUse the binary.\n\nNote:\nMind.")],
            id="admonitions become a labelled paragraph",
        ),
        pytest.param(
            "# The `rclpy` **API** {#api}\n\nText.\n\n## See [the guide](guide.md)\n\nMore.\n",
            [(("The rclpy API",), "Text."), (("The rclpy API", "See the guide"), "More.")],
            id="headings lose inline markup, ids and link targets",
        ),
        pytest.param(
            "# Keep\r\n\r\nWindows line ends.\r\n",
            [(("Keep",), "Windows line ends.")],
            id="CRLF read as LF",
        ),
    ],
)
def test_markdown_sections(source: str, expected: list[tuple[tuple[str, ...], str]]) -> None:
    assert sections("docs/page.mdx", source) == expected


@pytest.mark.parametrize(
    "path, source, title, slug",
    [
        ("docs/a.md", "---\ntitle: From meta\nslug: /a\n---\n# From H1\n", "From meta", "/a"),
        ("docs/a.md", "# From *H1*\n\n# Second H1\n", "From H1", None),
        ("docs/a.md", "---\nsidebar_label: Label\n---\ntext\n", "Label", None),
        ("docs/02-first_steps.md", "text\n", "First steps", None),
        ("docs/navigation/index.md", "text\n", "Navigation", None),
        ("README.md", "text\n", "Readme", None),
    ],
)
def test_markdown_title_and_slug(path: str, source: str, title: str, slug: str | None) -> None:
    doc = parse_document(path, source)
    assert (doc.title, doc.slug) == (title, slug)


def test_the_whole_text_has_headings_as_markdown() -> None:
    doc = parse_document("a.md", "# Top\n\nA.\n\n## Sub\n\nB.\n")
    assert doc.text == "# Top\n\nA.\n\n## Sub\n\nB."


RST_BOOK = """\
==========
Main Title
==========

.. contents::
   :local:

Intro paragraph.

Section A
=========

Text of A.

.. code-block:: python
   :linenos:

   print("hi")

Sub A1
------

Sub text.

.. note::

   Be careful.

.. a comment that
   continues

.. _label-target:

Section B
=========

Run this::

    $ ros2 run demo talker

.. toctree::
   :maxdepth: 1

   other
"""


def test_rst_sections_follow_the_adornment_order() -> None:
    doc = parse_document("book/index.rst", RST_BOOK)
    assert doc.title == "Main Title"
    assert [s.path for s in doc.sections] == [
        ("Main Title",),
        ("Main Title", "Section A"),
        ("Main Title", "Section A", "Sub A1"),
        ("Main Title", "Section B"),
    ]


@pytest.mark.parametrize(
    "heading, expected_text",
    [
        ("Main Title", "Intro paragraph."),
        ("Section A", 'Text of A.\n\n```python\nprint("hi")\n```'),
        ("Sub A1", "Sub text.\n\nNote:\n\nBe careful."),
    ],
    ids=["contents dropped", "code-block fenced, options dropped", "note labelled"],
)
def test_rst_section_text(heading: str, expected_text: str) -> None:
    by_heading = {s.path[-1]: s.text for s in parse_document("b.rst", RST_BOOK).sections}
    assert by_heading[heading] == expected_text


def test_rst_literal_block_becomes_a_fence_and_boilerplate_is_gone() -> None:
    section_b = parse_document("b.rst", RST_BOOK).sections[-1]
    lead, code, after = section_b.text.split(FENCE)
    assert lead.strip() == "Run this:"
    assert code.strip() == "$ ros2 run demo talker"
    assert after.strip() == ""  # the toctree, its options and entries are dropped
    whole = parse_document("b.rst", RST_BOOK).text
    for hidden in ("a comment", "label-target", "contents", "maxdepth", ":linenos:"):
        assert hidden not in whole


def test_rst_without_a_title_takes_it_from_the_path() -> None:
    doc = parse_document("docs/03-launch_files.rst", "Just a paragraph.\n")
    assert doc.title == "Launch files"
    assert doc.sections == [Section((), "Just a paragraph.")]


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Using :ref:`launch files <launch>`", "Using launch files"),
        ("The ``Node`` class", "The Node class"),
        ("*Emphasis* and __strong__", "Emphasis and strong"),
        ("[Link](https://x.y) text", "Link text"),
        ("Tag <Badge text='new' /> here", "Tag here"),
        ("snake_case_name stays", "snake_case_name stays"),
    ],
)
def test_clean_heading(raw: str, clean: str) -> None:
    assert clean_heading(raw) == clean


@pytest.mark.parametrize(
    "path, source, message",
    [
        ("notes.txt", "text", "unsupported file type: .txt"),
        ("Makefile", "all:", "unsupported file type: none"),
        ("a.md", "---\ntitle: [unclosed\n---\nx", "not valid YAML"),
        ("a.md", "---\n- a list\n---\nx", "not a mapping"),
    ],
)
def test_unreadable_documents_are_refused(path: str, source: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_document(path, source)
