"""The model work: a summary (map-reduce over parts for long chapters), or a chapter rewritten
for an audience segment or translated, streamed part by part with code blocks and formulas
restored from the original."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from lectern_common.contracts import Chapter
from lectern_common.gemini import Gemini, Usage
from lectern_summary import prompts
from lectern_summary.schemas import LANGUAGES, Kind
from lectern_summary.settings import SummarySettings
from lectern_summary.textblocks import Restorer, parts, protect

Emit = Callable[[str], None]


class _PartPrompt(TypedDict):
    """What the personalization and translation prompts share for one part of a chapter."""

    title: str
    masked: str
    codes: list[str]
    index: int
    total: int
    preview_chars: int


@dataclass(frozen=True)
class Job:
    chapter: Chapter
    kind: Kind
    audience: str = ""  # the profile segment, or the language code


class Writer:
    def __init__(self, gemini: Gemini, settings: SummarySettings) -> None:
        self.gemini, self.settings = gemini, settings

    async def write(self, job: Job, emit: Emit | None) -> tuple[str, dict]:
        """The text and its usage; `emit` receives rewritten text as it streams."""
        usages: list[Usage] = []
        if job.kind is Kind.summary:
            text = await self._summarize(job.chapter, usages)
        else:
            text = await self._rewrite(job, emit, usages)
        return text, {
            "calls": len(usages),
            "prompt_tokens": sum(u.prompt_tokens for u in usages),
            "output_tokens": sum(u.output_tokens for u in usages),
        }

    async def _call(self, prompt: str, system: str, usages: list[Usage]) -> str:
        usage = Usage()
        usages.append(usage)
        return await self.gemini.generate(
            prompt, system=system, usage=usage, max_tokens=self.settings.summary_max_output_tokens
        )

    async def _summarize(self, chapter: Chapter, usages: list[Usage]) -> str:
        pieces = parts(chapter, self.settings.input_budget_chars)
        if len(pieces) == 1:
            return await self._call(
                prompts.summary_prompt(chapter.title, pieces[0]), prompts.SUMMARY_SYSTEM, usages
            )
        # Map-reduce: notes on each part (concurrently), then one summary of the notes.
        notes = await asyncio.gather(
            *(
                self._call(
                    prompts.part_summary_prompt(chapter.title, piece, n, len(pieces)),
                    prompts.PART_SUMMARY_SYSTEM,
                    usages,
                )
                for n, piece in enumerate(pieces, 1)
            )
        )
        return await self._call(
            prompts.reduce_prompt(chapter.title, list(notes)), prompts.REDUCE_SYSTEM, usages
        )

    def _rewrite_prompt(
        self, job: Job, masked: str, codes: list[str], index: int, total: int
    ) -> tuple[str, str]:
        common: _PartPrompt = {
            "title": job.chapter.title,
            "masked": masked,
            "codes": codes,
            "index": index,
            "total": total,
            "preview_chars": self.settings.code_preview_chars,
        }
        if job.kind is Kind.personalized:
            return (
                prompts.personalized_prompt(segment=job.audience, **common),
                prompts.PERSONALIZED_SYSTEM,
            )
        return (
            prompts.translation_prompt(language=LANGUAGES[job.audience], **common),
            prompts.TRANSLATION_SYSTEM,
        )

    async def _rewrite(self, job: Job, emit: Emit | None, usages: list[Usage]) -> str:
        """Rewrite or translate part by part, streaming; code blocks and formulas are put back
        from the original, never taken from the model."""
        out: list[str] = []

        def push(text: str) -> None:
            if text:
                out.append(text)
                if emit is not None:
                    emit(text)

        pieces = parts(job.chapter, self.settings.rewrite_budget_chars)
        for index, piece in enumerate(pieces, 1):
            masked, codes = protect(piece)
            prompt, system = self._rewrite_prompt(job, masked, codes, index, len(pieces))
            restorer = Restorer(codes)
            usage = Usage()
            usages.append(usage)
            if index > 1:
                push("\n\n")
            async for token in self.gemini.stream(
                prompt,
                system=system,
                usage=usage,
                max_tokens=self.settings.chapter_max_output_tokens,
            ):
                push(restorer.feed(token))
            push(restorer.finish())
        return "".join(out)
