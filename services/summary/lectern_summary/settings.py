"""Summary service settings (own fields prefixed SUMMARY_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from lectern_common.settings import (
    GeminiBetweenTokensTimeout,
    GeminiFirstTokenTimeout,
    UpstreamSettings,
)


class SummarySettings(UpstreamSettings):
    model_config = SettingsConfigDict(env_prefix="SUMMARY_")

    service_name: str = "summary"
    port: int = 8104
    # The only body this service takes is a translation request, one small JSON object: the
    # shared body cap refuses anything bigger before it is parsed, chunked or not.
    max_body_bytes: int = 1024

    # A stalled model must never hold a request (or the single-flight lock) forever; the
    # stream waits 30 s here (the shared default is 20 s).
    gemini_first_token_timeout_s: GeminiFirstTokenTimeout = 30.0
    gemini_between_tokens_timeout_s: GeminiBetweenTokensTimeout = 30.0
    # Each call names its own ceiling: a summary's, or a rewritten/translated part's.
    summary_max_output_tokens: int = 1024
    chapter_max_output_tokens: int = 8192

    # Input budget per model call (characters, ~4 per token). Longer chapters are processed in
    # parts: summaries map-reduce over parts of `input_budget_chars`; rewrites and translations
    # go part by part in smaller parts, because their output is as long as their input and must
    # fit `chapter_max_output_tokens`.
    input_budget_chars: int = 60_000
    rewrite_budget_chars: int = 16_000
    # Code blocks are shown to the model for context only (it writes markers that are replaced by
    # the original code afterwards), so a long listing is cut in the prompt.
    code_preview_chars: int = 1_500

    # Single flight: the generating replica holds a Redis lock (refreshed while it works);
    # others wait for the stored row at most `wait_timeout_s`.
    lock_ttl_s: float = 30.0
    wait_timeout_s: float = 150.0
    wait_poll_s: float = 0.05
    failure_memory_s: float = 30.0
    # An SSE comment this often while a stream has nothing to send (waiting for a generation).
    sse_keepalive_s: float = 15.0
