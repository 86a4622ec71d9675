"""The evaluation's own arithmetic: relevance, the fixed tuning/held-out split, recall and MRR,
the coverage counts and the published targets, on made-up results (no stack)."""

from __future__ import annotations

import pytest

from lectern_dev.evaluate import (
    Coverage,
    Found,
    evaluate,
    question_sets,
    relevant,
    split_of,
    target_misses,
)

GOLD = {
    "id": "g1",
    "corpus": "gazebo",
    "kind": "factual",
    "source": "jetty/sensors.md",
    "section": "IMU sensor",
    "evidence": "outputs the `orientation` of our",
}


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            {
                "source_path": "jetty/sensors.md",
                "section": "Other",
                "text": "It outputs  the `orientation` of our robot",
            },
            True,
        ),
        (
            {"source_path": "jetty/sensors.md", "section": "**IMU** sensor", "text": "unrelated"},
            True,
        ),
        (
            {
                "source_path": "jetty/other.md",
                "section": "IMU sensor",
                "text": "outputs the `orientation` of our",
            },
            False,
        ),
        ({"source_path": "jetty/sensors.md", "section": "Lidar", "text": "unrelated"}, False),
    ],
)
def test_a_result_is_relevant_by_source_and_evidence_or_section(
    result: dict, expected: bool
) -> None:
    assert relevant(result, GOLD) is expected


def test_the_split_depends_on_the_id_alone_and_halves_a_set() -> None:
    ids = [f"q-{n:03d}" for n in range(400)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    assert 150 < splits.count("tune") < 250


def test_own_questions_are_split_and_dev_kept_whole(tmp_path) -> None:
    dev = tmp_path / "dev.jsonl"
    dev.write_text('{"id": "d1", "corpus": null}\n')
    own = tmp_path / "questions"
    own.mkdir()
    (own / "a.jsonl").write_text("".join(f'{{"id": "q-{n}", "corpus": null}}\n' for n in range(40)))
    sets = question_sets(dev, own)
    assert [q["id"] for q in sets["dev"]] == ["d1"]
    assert len(sets["tune"]) + len(sets["heldout"]) == 40
    assert {q["id"] for q in sets["tune"]}.isdisjoint({q["id"] for q in sets["heldout"]})


def test_recall_mrr_and_coverage_are_counted_per_question() -> None:
    hit = {"source_path": "jetty/sensors.md", "section": "IMU sensor", "text": ""}
    miss = {"source_path": "x.md", "section": "x", "text": ""}
    gold = [
        {**GOLD, "id": "first"},
        {**GOLD, "id": "third"},
        {**GOLD, "id": "absent", "kind": "vague"},
        {"id": "na", "corpus": None, "kind": "unanswerable"},
    ]
    answers = {
        "first": Found([hit], "covered"),
        "third": Found([miss, miss, hit], "covered"),
        "absent": Found([miss], "not_covered"),
        "na": Found([miss], "not_covered"),
    }
    coverage = Coverage()
    gold = [{**g, "question": g["id"]} for g in gold]  # each asks its own id
    report = evaluate(gold, lambda question: answers[question], coverage)
    scores = report.overall.as_dict()
    assert scores["n"] == 3
    assert scores["recall@1"] == pytest.approx(1 / 3, abs=1e-3)
    assert scores["recall@5"] == pytest.approx(2 / 3, abs=1e-3)
    assert scores["mrr@10"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-3)
    assert report.misses == ["absent"]
    assert coverage.as_dict() | {"wrongly_refused_ids": []} == {
        "unanswerable": 1,
        "caught": 1,
        "answerable": 3,
        "wrongly_refused": 1,
        "wrongly_refused_share": 0.333,
        "wrongly_refused_ids": [],
    }
    assert coverage.refused_ids == ["absent"]
    assert "vague recall@5 0.000 < 0.8" in target_misses(report)
