"""A fake Gemini server speaking the real REST wire protocol, for tests and benchmarks.

Routes the google-genai client calls: `POST /v1beta/models/{m}:generateContent`,
`:streamGenerateContent?alt=sse` and `:batchEmbedContents` (also under /v1). Behaviour is set
over `/_fake/*`: latency (time to first token, token interval), queued HTTP errors (429/500),
an error, a stall or a dropped connection after N streamed chunks, scripted replies, and a log
of requests received (with the reply of each `generateContent`). Asked to put an Urdu question
into an English search query, it answers word by word from a small glossary.

Run: `python -m lectern_dev.fake_gemini --port 8199`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import re
import threading
import time
from dataclasses import asdict, dataclass, field

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Behaviour:
    ttft_ms: float = 0.0  # delay before the first streamed chunk / the whole reply
    token_interval_ms: float = 0.0  # delay between streamed chunks
    words_per_chunk: int = 3
    fail_next: list[int] = field(default_factory=list)  # HTTP statuses for the next calls
    fail_after_chunks: int | None = None  # send an error chunk after N chunks (status 500)
    stall_after_chunks: int | None = None  # stop sending (connection left open) after N chunks
    drop_after_chunks: int | None = None  # cut the connection (no clean end) after N chunks
    stall_s: float = 3600.0
    replies: list[dict] = field(default_factory=list)  # [{"contains": str, "reply": str}]
    default_reply: str | None = None


class FakeState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.behaviour = Behaviour()
        self.requests: list[dict] = []

    def reset(self) -> None:
        with self.lock:
            self.behaviour = Behaviour()
            self.requests = []

    def next_failure(self) -> int | None:
        with self.lock:
            return self.behaviour.fail_next.pop(0) if self.behaviour.fail_next else None


def prompt_text(body: dict) -> str:
    parts: list[str] = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    for content in ([system] if system else []) + list(body.get("contents") or []):
        for part in content.get("parts", []):
            if isinstance(part, dict) and "text" in part:
                parts.append(part["text"])
    return "\n".join(parts)


def reply_for(behaviour: Behaviour, body: dict) -> str:
    text = prompt_text(body)
    for rule in behaviour.replies:
        if rule.get("contains", "") in text:
            return rule["reply"]
    if "English search query" in text:
        return english_rewrite(text)
    if behaviour.default_reply is not None:
        return behaviour.default_reply
    # A grounded-looking answer that cites the first numbered source it was given.
    cited = "[1]" if re.search(r"^\[1\]", text, re.MULTILINE) else ""
    question = text.strip().splitlines()[-1][:200] if text.strip() else ""
    return (
        f"This is the fake model's answer {cited} to: {question}. "
        f"It streams in small pieces so tests can watch the order of events {cited}."
    )


# Urdu words of the sample book's questions (phrases are replaced first, longest first).
URDU_GLOSSARY = {
    "آئی ایم یو": "IMU",
    "انسان نما": "humanoid",
    "ہیومنائڈ": "humanoid",
    "روبوٹ": "robot",
    "سینسر": "sensor",
    "سینسرز": "sensors",
    "چلنے": "walking",
    "ناپتا": "measure",
    "پیمائش": "measure",
    "کیا": "what",
    "کیسے": "how",
    "کیوں": "why",
    "نوڈ": "node",
    "ٹاپک": "topic",
    "سیمولیشن": "simulation",
    "توازن": "balance",
    "کنٹرولر": "controller",
    "کیمرہ": "camera",
    "گیزبو": "Gazebo",
    "پل": "bridge",
    "انسٹال": "install",
}
# Roman Urdu words ("" for particles, which are dropped).
ROMAN_URDU = {
    "kya": "what",
    "kaise": "how",
    "kyun": "why",
    "mein": "in",
    "parhein": "read",
    "parhna": "read",
    "naapta": "measures",
    "chalana": "run",
    "banana": "create",
    **dict.fromkeys(("ka", "ki", "ke", "hai", "hain", "ko", "se", "par", "aur"), ""),
}
_ARABIC_WORD = re.compile(r"[\u0600-\u06ff]")


def english_rewrite(prompt: str) -> str:
    """A plausible English search query for the Urdu question in a rewrite prompt: glossary
    words translated, Latin-script words (names, code) kept, other Urdu words dropped."""
    question = next(
        (
            ln.split(":", 1)[1]
            for ln in prompt.splitlines()
            if ln.startswith(("Question:", "Follow-up"))
        ),
        prompt,
    )
    for urdu, english in sorted(URDU_GLOSSARY.items(), key=lambda kv: -len(kv[0])):
        question = question.replace(urdu, f" {english} ")
    words = [
        ROMAN_URDU.get(w.lower(), w)
        for w in re.findall(r"[\w.+/-]+", question)
        if not _ARABIC_WORD.search(w)
    ]
    return " ".join(w for w in words if w) or "robot"


def fake_embedding(text: str, dim: int) -> list[float]:
    """Hashed bag of words: deterministic, and texts sharing words point the same way."""
    vec = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vec[h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def error_json(status: int) -> dict:
    return {
        "error": {
            "code": status,
            "message": f"fake error {status}",
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }


def candidate(text: str, finish: str | None = None) -> dict:
    cand: dict = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return cand


def usage(prompt: str, reply: str) -> dict:
    p, c = max(1, len(prompt) // 4), max(1, len(reply) // 4)
    return {"promptTokenCount": p, "candidatesTokenCount": c, "totalTokenCount": p + c}


def chunks_of(reply: str, words_per_chunk: int) -> list[str]:
    words = re.findall(r"\S+\s*", reply)
    n = max(1, words_per_chunk)
    return ["".join(words[i : i + n]) for i in range(0, len(words), n)] or [reply]


def create_app(state: FakeState | None = None) -> Starlette:
    state = state or FakeState()

    def log_request(kind: str, model: str, body: dict) -> dict:
        entry = {"kind": kind, "model": model, "at": time.time(), "prompt": prompt_text(body)}
        entry["body"] = body
        with state.lock:
            state.requests.append(entry)
        return entry

    async def model_call(request: Request) -> Response:
        model, _, method = request.path_params["target"].partition(":")
        body = orjson.loads(await request.body() or b"{}")
        if not request.headers.get("x-goog-api-key"):
            return JSONResponse(error_json(400) | {"note": "missing api key"}, status_code=400)
        logged = log_request(method, model, body)
        behaviour = state.behaviour
        if (status := state.next_failure()) is not None:
            return JSONResponse(error_json(status), status_code=status)
        if method == "batchEmbedContents":
            embeddings = [
                {
                    "values": fake_embedding(
                        prompt_text({"contents": [r["content"]]}),
                        int(r.get("outputDimensionality") or 768),
                    )
                }
                for r in body.get("requests", [])
            ]
            return JSONResponse({"embeddings": embeddings})
        if method == "embedContent":
            dim = int(body.get("outputDimensionality") or 768)
            return JSONResponse(
                {
                    "embedding": {
                        "values": fake_embedding(
                            prompt_text({"contents": [body.get("content", {})]}), dim
                        )
                    }
                }
            )
        reply = reply_for(behaviour, body)
        prompt = prompt_text(body)
        if method == "generateContent":
            logged["reply"] = reply  # what a test reads back, e.g. a rewritten search query
            await asyncio.sleep(behaviour.ttft_ms / 1000)
            return JSONResponse(
                {
                    "candidates": [candidate(reply, "STOP")],
                    "usageMetadata": usage(prompt, reply),
                    "modelVersion": model,
                }
            )
        if method == "streamGenerateContent":
            return StreamingResponse(
                stream(behaviour, prompt, reply, model), media_type="text/event-stream"
            )
        return JSONResponse(error_json(400), status_code=400)

    async def stream(behaviour: Behaviour, prompt: str, reply: str, model: str):
        await asyncio.sleep(behaviour.ttft_ms / 1000)
        pieces = chunks_of(reply, behaviour.words_per_chunk)
        for i, piece in enumerate(pieces):
            if behaviour.fail_after_chunks is not None and i == behaviour.fail_after_chunks:
                yield b"data: " + orjson.dumps(error_json(500)) + b"\r\n\r\n"
                return
            if behaviour.stall_after_chunks is not None and i == behaviour.stall_after_chunks:
                await asyncio.sleep(behaviour.stall_s)
                return
            if behaviour.drop_after_chunks is not None and i == behaviour.drop_after_chunks:
                # uvicorn closes a response whose body fails without ending the chunked stream.
                raise ConnectionAbortedError("fake Gemini dropped the connection")
            last = i == len(pieces) - 1
            event = {
                "candidates": [candidate(piece, "STOP" if last else None)],
                "modelVersion": model,
            }
            if last:
                event["usageMetadata"] = usage(prompt, reply)
            yield b"data: " + orjson.dumps(event) + b"\r\n\r\n"
            if not last and behaviour.token_interval_ms:
                await asyncio.sleep(behaviour.token_interval_ms / 1000)

    async def configure(request: Request) -> Response:
        data = orjson.loads(await request.body() or b"{}")
        with state.lock:
            state.behaviour = Behaviour(**data)
        return JSONResponse(asdict(state.behaviour))

    async def reset(_: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    async def requests_log(request: Request) -> Response:
        kind = request.query_params.get("kind")
        with state.lock:
            items = [r for r in state.requests if kind is None or r["kind"] == kind]
        return JSONResponse({"requests": items})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1beta/models/{target:path}", model_call, methods=["POST"]),
            Route("/v1/models/{target:path}", model_call, methods=["POST"]),
            Route("/_fake/config", configure, methods=["POST"]),
            Route("/_fake/reset", reset, methods=["POST"]),
            Route("/_fake/requests", requests_log, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8199)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
