"""The citation check without a stack: which sentence each marker closes, and the support
score calibrated on pairs written over the sample book (book/): sentences a source supports
and sentences it does not (cited to the wrong source, or partly invented)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lectern_chat import citations

BOOK = Path(__file__).resolve().parents[2] / "book"


def section(chapter: str, heading: str) -> str:
    """One section of the sample book, as a search result's passage would hold it."""
    text = next(BOOK.glob(f"{chapter}*")).read_text()
    return heading + "\n" + text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


SOURCES = [
    section("05-sensors", "The inertial measurement unit"),
    section("05-sensors", "Lidar"),
    section("03-simulation-gazebo", "Bridging Gazebo and ROS 2"),
    section("07-control", "Feedback and the PID controller"),
    section("08-humanoid-locomotion", "Support polygon and centre of pressure"),
]

SUPPORTED = [
    "An IMU reports angular velocity and linear acceleration [1].",
    "For a walking robot, the IMU in the pelvis tells the balance controller which way is"
    " down [1].",
    "Gyroscopes drift over time while accelerometers are noisy, so a Kalman filter fuses them [1].",
    "Many IMUs also estimate the orientation as a quaternion [1].",
    "Accelerometer readings are noisy yet do not drift, whereas gyros are smooth but wander, so"
    " both get fused [1].",
    "A lidar is accurate and works in darkness, so it is the default for mapping [2].",
    "A planar lidar is published as a LaserScan message with an array of ranges [2].",
    "In the bridge, `]` sends data from ROS to Gazebo and `@` makes it bidirectional [3].",
    "Gazebo has its own transport layer, so its topics must be bridged to ROS 2 topics [3].",
    "A wrong bracket direction is a classic reason why a robot ignores velocity commands [3].",
    "The direction of each bracket in the bridge arguments decides which way data flows [3].",
    "The integral term of a PID controller removes steady errors such as the sag from gravity [4].",
    "The derivative term damps the motion and reduces overshoot [4].",
    "Raise Kp first; the derivative term then damps the oscillation it causes [4].",
    "The centre of pressure always lies inside the support polygon because the ground can only"
    " push [5].",
    "If a motion would push the centre of pressure outside the feet's contact area, the foot"
    " tips [5].",
    # Paraphrases sharing few words with the passage: the lexical score misses these two.
    "The pelvis IMU is the key sensor that lets a biped keep its balance [1].",
    "Lidar keeps working in the dark, which is why mapping usually relies on it [2].",
]
MISSED_PARAPHRASES = 2

UNSUPPORTED = [
    # True, but from another source than the one cited.
    "An IMU reports angular velocity and linear acceleration [2].",
    "A lidar measures distances with laser pulses [1].",
    "The integral term removes steady errors [5].",
    "The bridge translates between Gazebo and ROS 2 topics [4].",
    "The zero moment point is where the horizontal moments of gravity and inertia cancel [5].",
    "Camera images should carry hardware timestamps checked against the TF tree [2].",
    "Start every ROS node of a simulated robot with use_sim_time set to true [3].",
    "Depth cameras struggle with shiny and transparent surfaces [2].",
    "Domain randomisation varies friction and masses in every training episode [3].",
    # Invented, in whole or in part, with some of the passage's words.
    "Humanoids should be tuned with a genetic algorithm running on the GPU overnight [4].",
    "The IMU uses GPS satellites to correct its heading every second [1].",
    "A PID controller needs a neural network to estimate the centre of mass [4].",
    "An IMU reports angular velocity and also measures the distance to obstacles with laser"
    " pulses [1].",
    "A lidar is accurate, but it needs a GPU and a neural network to produce its ranges [2].",
    "The bridge runs inside the robot's motor drivers and enforces torque limits [3].",
    "The proportional term is computed by a Kalman filter from camera images [4].",
    "Humanoid feet are usually fitted with lidars to measure the support polygon [5].",
]


def only_check(sentence: str) -> citations.Check:
    [check] = citations.check(sentence, SOURCES)
    return check


@pytest.mark.parametrize("sentence", UNSUPPORTED)
def test_a_sentence_the_cited_passage_does_not_support_is_flagged(sentence: str):
    check = only_check(sentence)
    assert check.supported is False and check.score is not None
    assert check.score < citations.SUPPORT_THRESHOLD


def test_the_sentences_their_passages_support_pass():
    checks = [only_check(s) for s in SUPPORTED]
    missed = [s for s, c in zip(SUPPORTED, checks, strict=True) if not c.supported]
    assert len(missed) <= MISSED_PARAPHRASES, missed
    assert all(c.score is not None and 0 <= c.score <= 1 for c in checks)


def test_supported_pairs_score_above_unsupported_ones_on_average():
    supported = [only_check(s).score or 0 for s in SUPPORTED]
    unsupported = [only_check(s).score or 0 for s in UNSUPPORTED]
    assert sum(supported) / len(supported) > 2 * sum(unsupported) / len(unsupported)


def test_each_marker_closes_its_own_sentence():
    answer = (
        "An IMU reports angular velocity [1]. Lidar works in darkness [2][1].\n"
        "- Gazebo bridges topics [3, 4]\n"
        "See the code `ros2 run x [5]` and:\n```\ngz topic -l [2]\n```\nDone [1]."
    )
    assert citations.claims(answer) == [
        (1, "An IMU reports angular velocity"),
        (2, "Lidar works in darkness"),
        (1, "Lidar works in darkness"),
        (3, "- Gazebo bridges topics"),
        (4, "- Gazebo bridges topics"),
        (1, "Done"),
    ]


def test_a_marker_after_the_full_stop_closes_the_sentence_before_it():
    assert citations.claims("Lidar works in darkness. [2] Next one [1].") == [
        (2, "Lidar works in darkness."),
        (1, "Next one"),
    ]


def test_a_marker_naming_no_source_is_dangling():
    checks = citations.check("An IMU reports angular velocity [7]. See [0].", SOURCES)
    assert [c.as_dict() for c in checks] == [
        {"n": 7, "supported": False, "score": None, "dangling": True},
        {"n": 0, "supported": False, "score": None, "dangling": True},
    ]


def test_an_answer_without_markers_has_no_checks():
    assert citations.check("The book does not cover this.", SOURCES) == []
