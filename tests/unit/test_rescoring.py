"""The second-stage rescoring: which words of a question count, how much of it a candidate
covers, and the order it gives fused candidates."""

from __future__ import annotations

from lectern_retrieval import rescoring
from lectern_retrieval.rescoring import Candidate


def test_content_words_drop_how_a_question_is_asked_and_stem_the_rest() -> None:
    words = rescoring.content_words("How do I spawn the plugins in my_world?")
    assert words == {"spawn", "plugin", "my_world"}


def test_coverage_counts_words_in_the_text_or_the_headings() -> None:
    candidate = Candidate("c", 0.01, 0.5, 1.0, text="Spawning a model", heading="Plugins")
    words = rescoring.content_words("spawn plugin world")
    assert rescoring.coverage(words, candidate) == 2 / 3
    assert rescoring.coverage(frozenset(), candidate) == 0.0


def test_a_chunk_answering_the_whole_question_beats_one_repeating_a_word() -> None:
    # Fused first by RRF: ranked first by both legs for "camera" alone.
    repeats = Candidate("repeats", 2 / 61, 0.52, 9.0, text="camera camera camera", heading="")
    answers = Candidate(
        "answers", 1 / 62 + 1 / 63, 0.50, 8.0, text="the camera sensor's update rate", heading=""
    )
    dense = [("repeats", 0.52), ("answers", 0.50)]
    lexical = [("repeats", 9.0), ("answers", 8.0)]
    order = rescoring.rescore("camera update rate", [repeats, answers], dense, lexical)
    assert [chunk_id for chunk_id, _ in order] == ["answers", "repeats"]


def test_a_chunk_one_leg_missed_gets_that_legs_floor() -> None:
    lexical_only = Candidate("lex", 1 / 61, None, 5.0, text="x", heading="")
    dense_only = Candidate("dense", 1 / 61, 0.7, None, text="x", heading="")
    dense = [("dense", 0.7), ("other", 0.4)]
    scores = dict(rescoring.rescore("q", [lexical_only, dense_only], dense, [("lex", 5.0)]))
    fused = rescoring.W_FUSED / 61
    assert scores["lex"] == fused + rescoring.W_DENSE * 0.4 + rescoring.W_LEXICAL * 1.0
    assert scores["dense"] == fused + rescoring.W_DENSE * 0.7
