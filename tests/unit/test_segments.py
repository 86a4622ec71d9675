"""Profile segments: readers with alike profiles share one segment (and so one personalized
chapter); what a reader left out counts as the least experience and no hardware."""

from __future__ import annotations

import pytest

from lectern_profile.segments import experience, segment


def levels(python: str | None, cpp: str | None, ai_ml: str | None, ros2: str | None) -> dict:
    return {"python_level": python, "cpp_level": cpp, "ai_ml_level": ai_ml, "ros2_level": ros2}


@pytest.mark.parametrize(
    "profile, expected",
    [
        pytest.param({}, "beginner", id="nothing said"),
        pytest.param(levels(None, None, None, None), "beginner", id="all levels left out"),
        pytest.param(levels("none", "none", "none", "none"), "beginner", id="all none"),
        pytest.param(levels("advanced", None, None, None), "advanced", id="one level given"),
        pytest.param(levels("beginner", "intermediate", None, None), "intermediate", id="1.5"),
        pytest.param(levels("none", "intermediate", None, None), "beginner", id="1.0"),
        pytest.param(levels("intermediate", "advanced", None, None), "advanced", id="2.5"),
        pytest.param(
            levels("advanced", "advanced", "advanced", "beginner"), "advanced", id="2.5 of four"
        ),
        pytest.param(
            levels("advanced", "advanced", "beginner", "beginner"), "intermediate", id="2.0"
        ),
        pytest.param(
            levels("none", "none", "none", "advanced"), "beginner", id="0.75: one strength"
        ),
    ],
)
def test_experience_is_the_mean_of_the_levels_given(profile: dict, expected: str) -> None:
    assert experience(profile) == expected


@pytest.mark.parametrize(
    "profile, expected",
    [
        ({}, "beginner-simulation_only"),
        ({"hardware_access": None}, "beginner-simulation_only"),
        ({"hardware_access": "jetson"}, "beginner-jetson"),
        (
            {**levels("advanced", "advanced", None, None), "hardware_access": "physical_robot"},
            "advanced-physical_robot",
        ),
        (
            {**levels("intermediate", None, None, None), "hardware_access": "gpu_workstation"},
            "intermediate-gpu_workstation",
        ),
    ],
)
def test_segment_is_experience_and_hardware(profile: dict, expected: str) -> None:
    assert segment(profile) == expected


def test_fields_outside_the_levels_do_not_move_the_segment() -> None:
    base = {**levels("beginner", None, None, None), "hardware_access": "jetson"}
    other = {**base, "operating_system": "macos", "answer_depth": "detailed", "goals": "SLAM"}
    assert segment(other) == segment(base) == "beginner-jetson"
