"""With no Gemini key the service still answers: extractive texts, labelled as such and never
stored as if a model had written them; translation says plainly that it needs the model."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from lectern_dev.harness.books import chapter_id_of, ingest
from lectern_dev.harness.readers import new_reader
from lectern_dev.stack import Stack

CHAPTER = """# Sensors

## Cameras

A camera gives the robot colour images. It is cheap and dense.

## Lidar

A lidar measures distances with laser pulses. It works in the dark.

```bash
ros2 launch lidar.launch.py
```
"""


@pytest.fixture(scope="module")
def offline(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack("summary-offline", fake_gemini=False)


@pytest.fixture(scope="module")
def offline_gateway(offline: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=offline.gateway_url, timeout=30.0) as client:
        yield client


@pytest.fixture(scope="module")
def offline_chapter(offline: Stack) -> str:
    source, path = "summary-offline", "sensors.md"
    ingest(offline, source, {path: CHAPTER})
    return chapter_id_of(source, path)


def test_offline_summary_is_extractive_labelled_and_not_cached(
    offline_gateway: httpx.Client, offline_chapter: str, offline: Stack, stored
):
    url = f"/api/summary/chapters/{offline_chapter}"
    first = offline_gateway.get(url)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["model"] == "extractive"
    assert body["cached"] is False and body["generated_at"] is None
    assert body["summary"].startswith("_Extractive summary")
    assert "A camera gives the robot colour images." in body["summary"]
    assert "A lidar measures distances with laser pulses." in body["summary"]
    second = offline_gateway.get(url).json()
    assert second["cached"] is False
    assert stored(offline, offline_chapter) == []


def test_offline_personalized_is_the_chapter_as_written(
    offline_gateway: httpx.Client, offline_chapter: str, offline: Stack, stored
):
    reader = new_reader(offline_gateway)
    profile = offline_gateway.put(
        "/api/profile/me", headers=reader.headers, json={"python_level": "beginner"}
    )
    assert profile.status_code == 200, profile.text
    response = offline_gateway.post(
        f"/api/summary/chapters/{offline_chapter}/personalized", headers=reader.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "extractive" and body["cached"] is False
    assert body["text"].startswith("_Personalization needs the language model")
    assert "ros2 launch lidar.launch.py" in body["text"]
    assert stored(offline, offline_chapter) == []


def test_offline_translation_is_refused_plainly(
    offline_gateway: httpx.Client, offline_chapter: str
):
    response = offline_gateway.post(
        f"/api/summary/chapters/{offline_chapter}/translation", json={"language": "ur"}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "llm_unavailable"
