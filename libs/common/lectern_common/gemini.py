"""Gemini through google-genai: streaming with first-token and between-token timeouts, retries
with backoff only before the first token, one-shot generation, and batched embeddings."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import httpx
import httpx2
import structlog
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from lectern_common import metrics
from lectern_common.llm import GeminiConfig, LLMError, Usage

__all__ = ["Gemini", "GeminiConfig", "LLMError", "Usage", "open_gemini"]

log = structlog.get_logger()


# google-genai sends its requests with httpx2 (its own dependency), whose errors are not httpx's.
TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError)
TRANSIENT = (genai_errors.APIError, asyncio.TimeoutError, TimeoutError, OSError, *TRANSPORT_ERRORS)


def _network(exc: Exception) -> bool:
    return isinstance(exc, (OSError, *TRANSPORT_ERRORS)) and not isinstance(exc, TimeoutError)


def _retryable_status(exc: Exception) -> bool:
    code = getattr(exc, "code", None)
    return isinstance(exc, genai_errors.APIError) and (code == 429 or (code or 0) >= 500)


def _describe(exc: Exception) -> tuple[str, str, bool]:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "llm_timeout", "the language model did not answer in time", True
    if isinstance(exc, genai_errors.APIError):
        code = exc.code or 0
        if code == 429:
            return "llm_rate_limited", "the language model is busy, try again shortly", True
        if code >= 500:
            return "llm_unavailable", "the language model failed", True
        return "llm_rejected", "the language model rejected the request", False
    return "llm_error", "the language model call failed", True


# Model calls open at once per process (streams at once, plus the occasional rewrite).
MODEL_CONNECTIONS = 1000


class Gemini:
    """One client per process; cheap to share between requests."""

    def __init__(self, config: GeminiConfig) -> None:
        self.config = config
        # An explicit httpx2 transport keeps google-genai on httpx2 although aiohttp is
        # installed (our internal client uses it): on aiohttp the request timeout would cap a
        # whole stream and its errors are other types. It would save 7-11% of this client's
        # CPU (bench/client_cpu_bench.py genai); most goes to a pydantic response per chunk.
        http = types.HttpOptions(
            base_url=config.base_url,
            timeout=int(config.request_timeout_s * 1000),
            async_client_args={
                "transport": httpx2.AsyncHTTPTransport(
                    verify=httpx2.create_ssl_context(),
                    # httpx's default pool (100 connections, 20 kept) made the 101st of a
                    # classroom's streams wait for another to end, and every burst past 20
                    # connect anew; every stream holds its connection until the answer ends.
                    limits=httpx2.Limits(
                        max_connections=MODEL_CONNECTIONS,
                        max_keepalive_connections=MODEL_CONNECTIONS,
                        keepalive_expiry=30.0,
                    ),
                )
            },
        )
        self.client = genai.Client(api_key=config.api_key, http_options=http)
        metrics.model_known(config.model)

    def _failed(self, model: str, code: str, *, retry: bool) -> None:
        metrics.MODEL_FAILURES.labels(model, code).inc()
        if retry:
            metrics.MODEL_RETRIES.labels(model).inc()

    @staticmethod
    def _record(model: str, operation: str, outcome: str, started: float, usage: Usage) -> None:
        metrics.MODEL_CALLS.labels(model, operation, outcome).inc()
        metrics.MODEL_CALL_DURATION.labels(model, operation).observe(time.perf_counter() - started)
        if usage.prompt_tokens:
            metrics.MODEL_TOKENS.labels(model, "in").inc(usage.prompt_tokens)
        if usage.output_tokens:
            metrics.MODEL_TOKENS.labels(model, "out").inc(usage.output_tokens)

    def _gen_config(
        self, system: str | None, max_tokens: int | None
    ) -> types.GenerateContentConfig:
        return types.GenerateContentConfig(
            system_instruction=system,
            temperature=self.config.temperature,
            max_output_tokens=max_tokens or self.config.max_output_tokens,
        )

    async def _backoff(self, attempt: int) -> None:
        delay = self.config.backoff_base_s * 2 ** (attempt - 1)
        await asyncio.sleep(delay * (0.5 + random.random() / 2))

    async def stream(
        self,
        prompt: str | list[types.Content],
        *,
        system: str | None = None,
        usage: Usage | None = None,
        max_tokens: int | None = None,
    ) -> AsyncIterator[str]:
        """Yield text pieces as they arrive. Raises LLMError on failure; retries (with backoff)
        only while nothing has been yielded yet, so a reader never sees text twice."""
        usage = usage if usage is not None else Usage()
        started, outcome = time.perf_counter(), "error"
        try:
            # aclosing: a reader who leaves closes the model's stream (and its connection) now.
            async with contextlib.aclosing(
                self._stream(prompt, system=system, usage=usage, max_tokens=max_tokens)
            ) as pieces:
                async for text in pieces:
                    yield text
            outcome = "ok"
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "cancelled"  # the reader left
            raise
        finally:
            self._record(self.config.model, "stream", outcome, started, usage)

    async def _stream(
        self,
        prompt: str | list[types.Content],
        *,
        system: str | None,
        usage: Usage,
        max_tokens: int | None,
    ) -> AsyncGenerator[str, None]:
        cfg = self._gen_config(system, max_tokens)
        attempt = 0
        while True:
            attempt += 1
            usage.attempts = attempt
            yielded = False
            stream = None
            try:
                stream = await asyncio.wait_for(
                    self.client.aio.models.generate_content_stream(
                        model=self.config.model, contents=prompt, config=cfg
                    ),
                    self.config.first_token_timeout_s,
                )
                iterator = aiter(stream)
                timeout = self.config.first_token_timeout_s
                while True:
                    try:
                        # asyncio.timeout, not wait_for: no task per chunk.
                        async with asyncio.timeout(timeout):
                            chunk = await anext(iterator)
                    except StopAsyncIteration:
                        break
                    timeout = self.config.between_tokens_timeout_s
                    if chunk.usage_metadata:
                        usage.prompt_tokens = chunk.usage_metadata.prompt_token_count or 0
                        usage.output_tokens = chunk.usage_metadata.candidates_token_count or 0
                    text = chunk.text if chunk.candidates else None
                    if text:
                        yielded = True
                        yield text
                return
            except TRANSIENT as exc:
                code, message, retryable = _describe(exc)
                before_first = not yielded
                log.warning(
                    "llm.stream_failed", code=code, attempt=attempt, before_first_token=before_first
                )
                retry = (
                    before_first
                    and retryable
                    and attempt < self.config.max_attempts
                    and (_retryable_status(exc) or _network(exc))
                )
                self._failed(self.config.model, code, retry=retry)
                if retry:
                    await self._backoff(attempt)
                    continue
                raise LLMError(code, message, retryable=retryable) from exc
            finally:
                # Free the HTTP connection when the reader leaves or the call fails.
                if stream is not None and hasattr(stream, "aclose"):
                    await stream.aclose()

    async def generate(
        self,
        prompt: str | list[types.Content],
        *,
        system: str | None = None,
        usage: Usage | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """One-shot generation with the same retry policy (nothing is shown before it ends)."""
        usage = usage if usage is not None else Usage()
        started, outcome = time.perf_counter(), "error"
        try:
            text = await self._generate(prompt, system=system, usage=usage, max_tokens=max_tokens)
            outcome = "ok"
            return text
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._record(self.config.model, "generate", outcome, started, usage)

    async def _generate(
        self,
        prompt: str | list[types.Content],
        *,
        system: str | None,
        usage: Usage,
        max_tokens: int | None,
    ) -> str:
        cfg = self._gen_config(system, max_tokens)
        attempt = 0
        while True:
            attempt += 1
            usage.attempts = attempt
            try:
                response = await asyncio.wait_for(
                    self.client.aio.models.generate_content(
                        model=self.config.model, contents=prompt, config=cfg
                    ),
                    self.config.request_timeout_s,
                )
                if response.usage_metadata:
                    usage.prompt_tokens = response.usage_metadata.prompt_token_count or 0
                    usage.output_tokens = response.usage_metadata.candidates_token_count or 0
                text = response.text or ""
                if not text.strip():
                    self._failed(self.config.model, "llm_empty", retry=False)
                    raise LLMError(
                        "llm_empty", "the language model returned no text", retryable=True
                    )
                return text
            except TRANSIENT as exc:
                code, message, retryable = _describe(exc)
                log.warning("llm.generate_failed", code=code, attempt=attempt)
                retry = (
                    retryable
                    and attempt < self.config.max_attempts
                    and (_retryable_status(exc) or _network(exc))
                )
                self._failed(self.config.model, code, retry=retry)
                if retry:
                    await self._backoff(attempt)
                    continue
                raise LLMError(code, message, retryable=retryable) from exc

    async def embed(
        self, texts: list[str], *, model: str, dimension: int, task_type: str
    ) -> list[list[float]]:
        """Embed a batch (Gemini's batchEmbedContents), retrying 429/5xx with backoff."""
        metrics.model_known(model)
        begun, outcome = time.perf_counter(), "error"
        try:
            vectors = await self._embed(
                texts, model=model, dimension=dimension, task_type=task_type
            )
            outcome = "ok"
            return vectors
        finally:
            self._record(model, "embed", outcome, begun, Usage())

    async def _embed(
        self, texts: list[str], *, model: str, dimension: int, task_type: str
    ) -> list[list[float]]:
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                result = await self.client.aio.models.embed_content(
                    model=model,
                    contents=texts,
                    config=types.EmbedContentConfig(
                        task_type=task_type, output_dimensionality=dimension
                    ),
                )
                log.debug(
                    "llm.embedded", n=len(texts), ms=round((time.perf_counter() - started) * 1000)
                )
                return [list(e.values or []) for e in result.embeddings or []]
            except TRANSIENT as exc:
                code, message, retryable = _describe(exc)
                retry = attempt < self.config.max_attempts + 2 and (
                    _retryable_status(exc) or _network(exc)
                )
                self._failed(model, code, retry=retry)
                if retry:
                    await self._backoff(attempt)
                    continue
                raise LLMError(code, message, retryable=retryable) from exc

    async def aclose(self) -> None:
        await self.client.aio.aclose()


@asynccontextmanager
async def open_gemini(config: GeminiConfig | None) -> AsyncIterator[Gemini | None]:
    """The model client for a lifespan, or None without a config (no API key: the service's
    offline answerer is used)."""
    if config is None:
        yield None
        return
    gemini = Gemini(config)
    try:
        yield gemini
    finally:
        await gemini.aclose()
