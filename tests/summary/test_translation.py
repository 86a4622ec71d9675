"""Translated chapters: cached per language, code blocks kept verbatim, languages validated."""

from __future__ import annotations

import httpx

from lectern_dev.harness.books import chapter_id_of, ingest
from lectern_dev.harness.services import model_calls
from lectern_dev.harness.sse import parse_text
from lectern_dev.stack import Stack

CODE = "```bash\nros2 topic echo /joint_states\n```"
CHAPTER = f"""# Joint states

Every joint publishes its position on a topic.

{CODE}

The robot state publisher turns them into transforms.
"""


def test_translation_is_cached_per_language(
    gateway: httpx.Client, fake_gemini, chapter, stack: Stack, stored
):
    url = f"/api/summary/chapters/{chapter['id']}/translation"
    urdu = gateway.post(url, json={"language": "ur"})
    assert urdu.status_code == 200, urdu.text
    body = urdu.json()
    assert (body["kind"], body["audience"], body["cached"]) == ("translation", "ur", False)
    [call] = model_calls(fake_gemini)
    assert "into Urdu" in call["prompt"]

    again = gateway.post(url, json={"language": "ur"}).json()
    assert again["cached"] is True and again["text"] == body["text"]
    hindi = gateway.post(url, json={"language": "hi"}).json()
    assert hindi["cached"] is False and hindi["text"] != body["text"]
    assert len(model_calls(fake_gemini)) == 2
    assert [(r["kind"], r["audience"]) for r in stored(stack, chapter["id"])] == [
        ("translation", "hi"),
        ("translation", "ur"),
    ]


def test_code_blocks_are_kept_verbatim(
    gateway: httpx.Client, fake_gemini, stack: Stack, clean_cache
):
    source, path = "summary-translate", "state.md"
    ingest(stack, source, {path: CHAPTER})
    # The model writes the marker where the code belongs (and could not alter the code).
    fake_gemini.post(
        "/_fake/config",
        json={
            "default_reply": (
                "# حالتِ جوڑ\n\nہر جوڑ اپنی پوزیشن شائع کرتا ہے۔\n\n[[CODE 1]]\n\nختم۔"  # noqa: RUF001
            )
        },
    )
    response = gateway.post(
        f"/api/summary/chapters/{chapter_id_of(source, path)}/translation", json={"language": "ur"}
    )
    assert response.status_code == 200, response.text
    text = response.json()["text"]
    assert CODE in text
    assert text.index("ہر جوڑ") < text.index(CODE) < text.index("ختم")
    [call] = model_calls(fake_gemini)
    # The prose to translate carries a marker in place of the code.
    assert "[[CODE 1]]" in call["prompt"]


def test_code_the_model_dropped_is_put_back(
    gateway: httpx.Client, fake_gemini, stack: Stack, clean_cache
):
    source, path = "summary-translate-drop", "state.md"
    ingest(stack, source, {path: CHAPTER})
    fake_gemini.post("/_fake/config", json={"default_reply": "صرف متن، کوئی کوڈ نہیں۔"})  # noqa: RUF001
    response = gateway.post(
        f"/api/summary/chapters/{chapter_id_of(source, path)}/translation", json={"language": "ur"}
    )
    text = response.json()["text"]
    assert text.startswith("صرف متن")
    assert text.rstrip().endswith(CODE)


def test_translation_streams_when_asked(gateway: httpx.Client, fake_gemini, chapter):
    response = gateway.post(
        f"/api/summary/chapters/{chapter['id']}/translation",
        json={"language": "es"},
        headers={"accept": "text/event-stream"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_text(response.text)
    assert events[0].event == "meta" and events[-1].event == "done"
    assert events[0].data["audience"] == "es"


def test_bad_translation_requests(gateway: httpx.Client, fake_gemini, chapter):
    url = f"/api/summary/chapters/{chapter['id']}/translation"
    unsupported = gateway.post(url, json={"language": "xx"})
    assert unsupported.status_code == 422
    assert unsupported.json()["error"]["details"][0]["field"] == "language"
    assert gateway.post(url, json={}).status_code == 422
    assert gateway.post(url, json={"language": "ur", "extra": 1}).status_code == 422
    padded = gateway.post(
        url,
        content=b'{"language": "ur", "x": "' + b"a" * 5000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert padded.status_code == 413
    missing = gateway.post(
        "/api/summary/chapters/no-such-chapter/translation", json={"language": "ur"}
    )
    assert missing.status_code == 404
    assert model_calls(fake_gemini) == []
