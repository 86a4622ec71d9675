"""What callers of the model need without the model client: its errors, settings and usage
counts. Apart from `gemini.py`, which imports google-genai (~6 s of CPU to import on this kind
of machine), so a service that never calls the model (profile; retrieval with the local
embedder) starts without it: a restarted process answers sooner."""

from __future__ import annotations

from dataclasses import dataclass


class LLMError(Exception):
    """A model call that failed; `retryable` tells the client whether trying again may help."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code, self.message, self.retryable = code, message, retryable


@dataclass(frozen=True)
class GeminiConfig:
    api_key: str
    model: str
    base_url: str | None = None
    temperature: float = 0.2
    max_output_tokens: int = 2048
    first_token_timeout_s: float = 20.0
    between_tokens_timeout_s: float = 20.0
    request_timeout_s: float = 120.0
    max_attempts: int = 3
    backoff_base_s: float = 0.5


@dataclass
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 0

    def as_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "attempts": self.attempts,
        }
