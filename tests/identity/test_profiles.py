"""Reader profiles through the gateway: upsert semantics, validation, the segment, the internal
view other services use, persistence, ownership and deletion (with the reader's conversations)."""

from __future__ import annotations

import httpx
import pytest

from lectern_dev.harness.chat import ask as ask_chat
from lectern_dev.harness.readers import Reader, new_reader
from lectern_dev.harness.services import internal_headers, routed
from lectern_dev.stack import Stack

FULL = {
    "python_level": "advanced",
    "cpp_level": "intermediate",
    "ai_ml_level": "intermediate",
    "ros2_level": "beginner",
    "hardware_access": "jetson",
    "operating_system": "linux",
    "answer_depth": "detailed",
    "goals": "Build a walking humanoid in simulation first.",
}


def put(gateway: httpx.Client, reader: Reader, body: dict) -> httpx.Response:
    return gateway.put("/api/profile/me", headers=reader.headers, json=body)


def read(gateway: httpx.Client, reader: Reader) -> httpx.Response:
    return gateway.get("/api/profile/me", headers=reader.headers)


def ask(gateway: httpx.Client, reader: Reader, question: str) -> str:
    """Ask chat one question as this reader; return the conversation id once the answer ends."""
    answer = ask_chat(gateway, {"message": question}, headers=reader.headers)
    assert answer.status == 200, answer.body
    assert answer.last.event in ("done", "error")
    return answer.meta["conversation_id"]


def conversations(gateway: httpx.Client, reader: Reader) -> list[str]:
    response = gateway.get("/api/chat/conversations", headers=reader.headers)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["conversations"]]


def test_options_list_every_allowed_value_without_signing_in(gateway: httpx.Client):
    response = gateway.get("/api/profile/options")
    assert response.status_code == 200
    options = response.json()
    assert options["ros2_level"] == ["none", "beginner", "intermediate", "advanced"]
    assert options["hardware_access"] == [
        "simulation_only",
        "gpu_workstation",
        "jetson",
        "physical_robot",
    ]
    assert options["operating_system"] == ["linux", "windows", "macos"]
    assert options["answer_depth"] == ["brief", "standard", "detailed"]
    assert options["goals_max_chars"] == 500


def test_a_new_reader_has_no_profile_until_the_first_put(gateway: httpx.Client, reader: Reader):
    missing = read(gateway, reader)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    created = put(gateway, reader, FULL)
    assert created.status_code == 200, created.text
    assert {k: created.json()[k] for k in FULL} == FULL
    assert read(gateway, reader).json() == created.json()


def test_put_changes_only_the_fields_sent_and_null_clears_one(
    gateway: httpx.Client, reader: Reader
):
    put(gateway, reader, FULL)
    changed = put(gateway, reader, {"ros2_level": "advanced", "goals": None})
    assert changed.status_code == 200
    body = changed.json()
    assert body["ros2_level"] == "advanced"
    assert body["goals"] is None
    assert body["python_level"] == "advanced" and body["hardware_access"] == "jetson"
    assert put(gateway, reader, {}).json()["ros2_level"] == "advanced"  # an empty PUT keeps all


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"python_level": "expert"}, "python_level"),
        ({"hardware_access": "quantum_computer"}, "hardware_access"),
        ({"operating_system": "LINUX"}, "operating_system"),
        ({"answer_depth": 3}, "answer_depth"),
        ({"goals": "x" * 501}, "goals"),
        ({"favourite_colour": "blue"}, "favourite_colour"),
        ({"user_id": "someone-else"}, "user_id"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    gateway: httpx.Client, reader: Reader, body: dict, field: str
):
    put(gateway, reader, {"goals": "unchanged"})
    response = put(gateway, reader, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"]
    assert [d["field"] for d in error["details"]] == [field]
    assert read(gateway, reader).json()["goals"] == "unchanged"  # nothing was stored


def test_goals_of_exactly_500_characters_are_kept_whole(gateway: httpx.Client, reader: Reader):
    goals = "é" * 500  # characters, not bytes
    assert put(gateway, reader, {"goals": goals}).json()["goals"] == goals


@pytest.mark.parametrize(
    ("fields", "segment"),
    [
        ({}, "beginner-simulation_only"),
        ({"python_level": "none", "ros2_level": "beginner"}, "beginner-simulation_only"),
        (FULL, "intermediate-jetson"),
        (
            {
                "python_level": "advanced",
                "cpp_level": "advanced",
                "ros2_level": "intermediate",
                "hardware_access": "physical_robot",
            },
            "advanced-physical_robot",
        ),
    ],
)
def test_the_segment_is_experience_by_hardware(
    gateway: httpx.Client, reader: Reader, fields: dict, segment: str
):
    assert put(gateway, reader, fields).json()["segment"] == segment


def test_other_services_read_a_profile_by_id_inside_the_network_only(
    stack: Stack, gateway: httpx.Client, reader: Reader, other_reader: Reader
):
    put(gateway, reader, FULL)
    url = f"{stack.config.url('profile')}/internal/profiles"
    found = httpx.get(f"{url}/{reader.user_id}", headers=internal_headers(stack))
    assert found.status_code == 200
    assert found.json()["user_id"] == reader.user_id
    assert found.json()["segment"] == "intermediate-jetson"
    assert {k: found.json()[k] for k in FULL} == FULL
    assert (
        httpx.get(f"{url}/{other_reader.user_id}", headers=internal_headers(stack)).status_code
        == 404
    )
    assert httpx.get(f"{url}/{reader.user_id}").status_code == 401  # no internal token
    assert httpx.get(f"{url}/..%2F..%2Fetc", headers=internal_headers(stack)).status_code in (
        404,
        422,
    )
    # Not routed by the gateway, even for the signed-in reader it belongs to.
    through_gateway = gateway.get(f"/internal/profiles/{reader.user_id}", headers=reader.headers)
    assert through_gateway.status_code == 404
    assert "jetson" not in through_gateway.text


def test_readers_only_ever_see_and_change_their_own_profile(
    gateway: httpx.Client, reader: Reader, other_reader: Reader
):
    put(gateway, reader, {"goals": "A's goals", "ros2_level": "advanced"})
    put(gateway, other_reader, {"goals": "B's goals", "ros2_level": "none"})
    put(gateway, reader, {"ros2_level": "beginner"})
    assert read(gateway, other_reader).json()["ros2_level"] == "none"
    assert read(gateway, other_reader).json()["goals"] == "B's goals"
    assert read(gateway, reader).json()["goals"] == "A's goals"


def test_profiles_persist_across_a_service_restart(
    stack: Stack, gateway: httpx.Client, reader: Reader
):
    saved = put(gateway, reader, FULL).json()
    stack.restart_service("profile")
    routed(stack, ("/api/profile/health",))
    # Both credentials still work: nothing the verifier needs lived only in the old process.
    assert read(gateway, reader).json() == saved
    assert gateway.get("/api/profile/me", headers=reader.jwt_headers).json() == saved


def test_deleting_the_profile_deletes_the_readers_conversations_and_nobody_elses(
    gateway: httpx.Client, reader: Reader, other_reader: Reader, fake_gemini: httpx.Client
):
    put(gateway, reader, FULL)
    put(gateway, other_reader, FULL)
    mine = ask(gateway, reader, "What is a ROS 2 node?")
    theirs = ask(gateway, other_reader, "What is Gazebo?")
    assert conversations(gateway, reader) == [mine]

    deleted = gateway.delete("/api/profile/me", headers=reader.headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"profile_deleted": True, "conversations_deleted": 1}
    assert read(gateway, reader).status_code == 404
    assert conversations(gateway, reader) == []
    # Reader B keeps everything.
    assert conversations(gateway, other_reader) == [theirs]
    assert read(gateway, other_reader).json()["goals"] == FULL["goals"]
    # Deleting again is harmless.
    again = gateway.delete("/api/profile/me", headers=reader.headers)
    assert again.json() == {"profile_deleted": False, "conversations_deleted": 0}


def test_while_chat_is_down_deleting_keeps_the_profile_and_says_so(strict_stack: Stack):
    with httpx.Client(base_url=strict_stack.gateway_url, timeout=30.0) as gateway:
        reader = new_reader(gateway)
        put(gateway, reader, FULL)
        response = gateway.delete("/api/profile/me", headers=reader.headers)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "dependency_unavailable"
        assert "nothing was deleted" in response.json()["error"]["message"]
        assert read(gateway, reader).json()["goals"] == FULL["goals"]


def test_signed_out_readers_cannot_touch_profiles(gateway: httpx.Client):
    assert gateway.put("/api/profile/me", json={"goals": "x"}).status_code == 401
    assert gateway.delete("/api/profile/me").status_code == 401
