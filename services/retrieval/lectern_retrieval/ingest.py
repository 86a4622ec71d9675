"""Ingestion of one source (a book or corpus): validate every file first, then diff against the
registry so unchanged files cost nothing, embed only new chunks, and replace exactly the rows
and vectors of changed or removed files."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import asyncpg
import numpy as np
import structlog

from lectern_common import metrics
from lectern_common.contracts import CHAPTER_ID
from lectern_common.errors import ApiError
from lectern_retrieval import store
from lectern_retrieval.chunking import chunk_document, embedding_parts
from lectern_retrieval.embeddings import Embedder
from lectern_retrieval.parsing import SUPPORTED_SUFFIXES, ParseError, parse_document
from lectern_retrieval.settings import RetrievalSettings
from lectern_retrieval.store import DocumentRow
from lectern_retrieval.vectors import PassagePoint, VectorStore, passage_point_id

log = structlog.get_logger()

# Bump when parsing, chunking or term indexing changes, so a re-ingest rebuilds documents made
# the old way (vectors of unchanged chunks are reused, not recomputed).
PIPELINE_VERSION = "2"
EMBED_SLICE = 64  # chunks embedded (and upserted) per step of the progress stream
SOURCE_NAME = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
URL_PREFIX = re.compile(r"^(/|https?://[^\s]+/)[A-Za-z0-9._~/-]*$")

Progress = Callable[[dict], Awaitable[None]]


@dataclass(frozen=True)
class SourceFile:
    path: str
    data: bytes


def invalid(message: str, field: str) -> ApiError:
    return ApiError(
        422, "validation_error", message, details=[{"field": field, "message": message}]
    )


def check_source(source: str) -> str:
    if len(source) > 40 or not SOURCE_NAME.match(source):
        raise invalid(
            "source must be 1-40 characters: lowercase letters, digits, single - or _", "source"
        )
    return source


def check_url_prefix(prefix: str) -> str:
    if len(prefix) > 200 or not URL_PREFIX.match(prefix) or not prefix.endswith("/"):
        raise invalid(
            "url_prefix must be an absolute path or http(s) URL ending in /", "url_prefix"
        )
    return prefix


def check_path(path: str, field: str) -> str:
    """A safe relative POSIX path with a supported suffix (nothing like ../ or /etc)."""
    if (
        not path
        or len(path) > 300
        or "\\" in path
        or path.startswith("/")
        or any(ord(ch) < 32 for ch in path)
    ):
        raise invalid(f"{field}: not a relative path", field)
    parts = PurePosixPath(path).parts
    if any(p in ("..", ".", "") for p in parts):
        raise invalid(f"{field}: path must not contain '.' or '..' parts", field)
    if PurePosixPath(path).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{field}: only {', '.join(SUPPORTED_SUFFIXES)} files can be ingested",
            details=[{"field": field, "path": path}],
        )
    return path


def chapter_id_for(source: str, path: str) -> str:
    stem = str(PurePosixPath(path).with_suffix("")).lower()
    slug = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9._/-]+", "-", stem)).strip("-")
    chapter = "--".join([source, *[p.strip("-.") or "x" for p in slug.split("/")]])
    return chapter[:200]


def url_for(prefix: str, path: str, slug: str | None) -> str:
    if slug:
        return prefix.rstrip("/") + "/" + slug.lstrip("/") if not slug.startswith("http") else slug
    stem = str(PurePosixPath(path).with_suffix(""))
    if stem == "index" or stem.endswith("/index"):
        stem = stem[: -len("index")].rstrip("/")
    return prefix + stem


def decode_text(data: bytes, field: str) -> str:
    if b"\x00" in data:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{field}: binary file, not text",
            details=[{"field": field}],
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(
            415, "unsupported_media_type", f"{field}: not UTF-8 text", details=[{"field": field}]
        ) from exc


def allowed_roots(settings: RetrievalSettings) -> list[Path]:
    return [Path(p.strip()).resolve() for p in settings.ingest_roots.split(",") if p.strip()]


def collect_folder(folder: Path, settings: RetrievalSettings) -> list[SourceFile]:
    """The supported files below `folder`, which must lie inside an allowed root."""
    roots = allowed_roots(settings)
    if not roots:
        raise ApiError(
            403,
            "path_ingest_disabled",
            "folder ingestion is disabled (RETRIEVAL_INGEST_ROOTS is empty); "
            "upload the files instead",
        )
    resolved = folder.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ApiError(
            403,
            "path_not_allowed",
            "path is outside the allowed ingest roots",
            details=[{"field": "path"}],
        )
    if not resolved.is_dir():
        raise ApiError(404, "not_found", "folder not found", details=[{"field": "path"}])
    files: list[SourceFile] = []
    total = 0
    for path in sorted(resolved.rglob("*")):
        rel = path.relative_to(resolved)
        if (
            any(part.startswith(".") for part in rel.parts)
            or not path.is_file()
            or path.suffix.lower() not in SUPPORTED_SUFFIXES
        ):
            continue
        # A symlink may point anywhere: the file itself must stay inside the allowed roots.
        if not any(path.resolve().is_relative_to(root) for root in roots):
            raise ApiError(403, "path_not_allowed", f"{rel} links outside the allowed roots")
        data = path.read_bytes()
        total += len(data)
        if len(data) > settings.max_file_bytes or total > settings.max_upload_bytes:
            raise ApiError(413, "payload_too_large", f"{rel} is too large")
        files.append(SourceFile(path=rel.as_posix(), data=data))
        if len(files) > settings.max_upload_files:
            raise ApiError(413, "payload_too_large", "too many files")
    if not files:
        raise ApiError(
            422,
            "validation_error",
            "no Markdown, MDX or reStructuredText files found",
            details=[{"field": "path"}],
        )
    return files


def prepare(
    source: str, files: list[SourceFile], *, url_prefix: str, budget: int
) -> list[DocumentRow]:
    """Parse and chunk every file; raises ApiError (nothing stored) on the first bad one."""
    docs: list[DocumentRow] = []
    seen: dict[str, str] = {}
    for n, f in enumerate(files):
        field = f"files[{n}]"
        check_path(f.path, field)
        text = decode_text(f.data, f"{field} ({f.path})")
        try:
            parsed = parse_document(f.path, text)
        except ParseError as exc:
            raise invalid(f"{field} ({f.path}): {exc}", field) from exc
        chapter_id = chapter_id_for(source, f.path)
        if not CHAPTER_ID.match(chapter_id):
            raise invalid(f"{field} ({f.path}): cannot derive a chapter id", field)
        if chapter_id in seen:
            raise invalid(
                f"{field} ({f.path}) and {seen[chapter_id]} map to the same chapter", field
            )
        seen[chapter_id] = f.path
        chunks = chunk_document(parsed, source=source, source_path=f.path, budget=budget)
        file_hash = hashlib.sha256(
            f"{PIPELINE_VERSION}\x1f{budget}\x1f{url_prefix}\x1f".encode() + f.data
        ).hexdigest()
        clean = parsed.text
        docs.append(
            DocumentRow(
                chapter_id=chapter_id,
                source=source,
                source_path=f.path,
                title=parsed.title,
                url=url_for(url_prefix, f.path, parsed.slug),
                file_hash=file_hash,
                content_hash=hashlib.sha256(clean.encode()).hexdigest(),
                text=clean,
                sections=[
                    {"heading": s.path[-1] if s.path else parsed.title, "text": s.text}
                    for s in parsed.sections
                ],
                chunks=chunks,
            )
        )
    return docs


@dataclass
class Ingestor:
    pool: asyncpg.Pool
    vectors: VectorStore
    embedder: Embedder
    budget: int

    async def prepare(
        self, source: str, files: list[SourceFile], *, url_prefix: str
    ) -> list[DocumentRow]:
        """Validate, parse and chunk (off the event loop); raises ApiError, storing nothing."""
        docs = await asyncio.to_thread(
            prepare, source, files, url_prefix=url_prefix, budget=self.budget
        )
        await self._check_ids(self.pool, source, docs)
        return docs

    @staticmethod
    async def _check_ids(
        conn: asyncpg.Pool | asyncpg.Connection, source: str, docs: list[DocumentRow]
    ) -> None:
        if taken := await store.chapter_ids_taken(conn, [d.chapter_id for d in docs], source):
            raise ApiError(
                409, "conflict", f"chapter id {taken[0]} already belongs to another source"
            )

    async def apply(
        self,
        source: str,
        docs: list[DocumentRow],
        *,
        started: float,
        progress: Progress | None = None,
    ) -> dict:
        """Store the prepared documents; `started` (perf_counter) times the whole ingest."""
        with metrics.INGEST_RUNNING.track_inprogress():
            async with store.ingest_lock(self.pool) as conn:
                await self._check_ids(conn, source, docs)
                summary = await self._apply(conn, source, docs, progress)
        summary["seconds"] = round(time.perf_counter() - started, 3)
        metrics.INGEST_LAST_SUCCESS.set(time.time())
        for action in ("changed", "unchanged", "removed"):
            count = summary["new"] + summary["updated"] if action == "changed" else summary[action]
            metrics.INGEST_DOCUMENTS.labels(action).inc(count)
        log.info("ingest.done", **summary)
        return summary

    async def _apply(
        self,
        conn: asyncpg.Connection,
        source: str,
        docs: list[DocumentRow],
        progress: Progress | None,
    ) -> dict:
        known = await store.document_hashes(conn, source)
        changed = [d for d in docs if known.get(d.source_path, ("", ""))[1] != d.file_hash]
        uploaded = {d.source_path for d in docs}
        removed = [cid for path, (cid, _) in known.items() if path not in uploaded]
        stored = await store.stored_chunks(
            conn, [d.chapter_id for d in changed if d.source_path in known] + removed
        )
        passages = await asyncio.to_thread(self._passages, changed)
        to_embed = [
            (d, c)
            for d in changed
            for c in d.chunks
            if not self._reusable(stored.get(c.chunk_id), d, known, len(passages[c.chunk_id]))
        ]
        total = len(to_embed)
        if progress:
            await progress(
                {
                    "event": "start",
                    "files": len(docs),
                    "changed": len(changed),
                    "removed": len(removed),
                    "embeddings": total,
                }
            )
        await self._embed_and_store(to_embed, passages, progress)
        if changed or removed:
            await store.write_documents(
                conn, changed, removed, {cid: len(texts) for cid, texts in passages.items()}
            )
        await self._delete_stale(changed, removed, stored, passages)
        new = sum(1 for d in changed if d.source_path not in known)
        return {
            "source": source,
            "files": len(docs),
            "chunks": sum(len(d.chunks) for d in docs),
            "new": new,
            "updated": len(changed) - new,
            "unchanged": len(docs) - len(changed),
            "removed": len(removed),
            "embeddings_computed": total,
        }

    async def _delete_stale(
        self,
        changed: list[DocumentRow],
        removed: list[str],
        stored: dict[str, store.StoredChunk],
        passages: dict[str, list[str]],
    ) -> None:
        """Drop the points no row stands for any more: passages a kept chunk no longer has,
        every point of a changed chapter outside its current chunks (including those an
        interrupted ingest left behind), and the points of removed chapters."""
        await self.vectors.delete_points(
            [
                passage_point_id(chunk_id, i)
                for chunk_id, old in stored.items()
                if chunk_id in passages
                for i in range(len(passages[chunk_id]), old.passages)
            ]
        )
        for doc in changed:
            await self.vectors.delete_chapter(
                doc.chapter_id, keep_chunks=[c.chunk_id for c in doc.chunks]
            )
        for chapter_id in removed:
            await self.vectors.delete_chapter(chapter_id)

    @staticmethod
    def _reusable(
        old: store.StoredChunk | None,
        doc: DocumentRow,
        known: dict[str, tuple[str, str]],
        passages: int,
    ) -> bool:
        """A kept chunk's points serve again when its passages are the same texts: the title
        heads every passage but is not part of the chunk id. A document whose hash was
        forgotten lost its vectors: all of its chunks are embedded again."""
        return (
            old is not None
            and old.chapter_id == doc.chapter_id
            and bool(known.get(doc.source_path, ("", ""))[1])
            and old.title == doc.title
            and old.passages == passages
        )

    def _passages(self, docs: list[DocumentRow]) -> dict[str, list[str]]:
        return {
            c.chunk_id: self.embedder.passages(
                *embedding_parts(title=d.title, heading_path=c.heading_path, text=c.text)
            )
            for d in docs
            for c in d.chunks
        }

    async def _embed_and_store(
        self, items: list, passages: dict[str, list[str]], progress: Progress | None
    ) -> None:
        # Embed and upsert in slices so a big ingest streams progress and holds little memory.
        metrics.INGEST_REMAINING.inc(len(items))
        done = 0
        try:
            for start in range(0, len(items), EMBED_SLICE):
                await self._embed_slice(items[start : start + EMBED_SLICE], passages)
                done = start + min(EMBED_SLICE, len(items) - start)
                metrics.INGEST_EMBEDDED.inc(done - start)
                metrics.INGEST_REMAINING.dec(done - start)
                if progress:
                    await progress({"event": "progress", "embedded": done, "total": len(items)})
        finally:
            metrics.INGEST_REMAINING.dec(len(items) - done)

    async def _embed_slice(self, part: list, passages: dict[str, list[str]]) -> None:
        owners = [(d, c, i, text) for d, c in part for i, text in enumerate(passages[c.chunk_id])]
        vectors: np.ndarray = await self.embedder.embed_documents([o[3] for o in owners])
        await self.vectors.upsert(
            [
                PassagePoint(
                    id=passage_point_id(c.chunk_id, i),
                    dense=vector,
                    text=text,
                    chunk_id=c.chunk_id,
                    chapter_id=d.chapter_id,
                    source=d.source,
                )
                for (d, c, i, text), vector in zip(owners, vectors, strict=True)
            ]
        )
