"""`lectern ingest` and `lectern eval` against a running stack, and the embedding-model guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lectern_dev import REPO_ROOT
from lectern_dev.stack import Stack, StackError


def lectern(*args: str, stack: Stack) -> subprocess.CompletedProcess:
    env = {**os.environ, "ADMIN_TOKEN": stack.secrets["ADMIN_TOKEN"], "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "lectern_dev.cli", *args, "--url", stack.gateway_url],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_lectern_ingest_prints_a_summary(local_stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "guide").mkdir()
    (tmp_path / "guide" / "one.md").write_text("# One\n\nThe quibble engine starts.\n")
    (tmp_path / "two.rst").write_text("Two\n===\n\nThe quibble engine stops.\n")
    first = lectern("ingest", str(tmp_path), "--source", "clitest", "--json", stack=local_stack)
    assert first.returncode == 0, first.stderr
    assert "clitest: 2 files" in first.stderr and "2 new" in first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["embeddings_computed"] == summary["chunks"] == 2
    again = lectern("ingest", str(tmp_path), "--source", "clitest", "--json", stack=local_stack)
    assert again.returncode == 0, again.stderr
    assert "2 unchanged" in again.stderr and "0 embeddings computed" in again.stderr


def test_lectern_ingest_reports_errors(local_stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "bad.md").write_bytes(b"\xff\xfe\x00binary")
    result = lectern("ingest", str(tmp_path), "--source", "clibad", stack=local_stack)
    assert result.returncode != 0
    assert "415" in result.stderr and "binary" in result.stderr
    missing = lectern("ingest", str(tmp_path / "nope"), stack=local_stack)
    assert missing.returncode == 2


def test_lectern_eval_prints_recall_table(local_stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "fizz.md").write_text("# Fizz\n\nThe fizzlepop valve opens at noon.\n")
    assert (
        lectern(
            "ingest", str(tmp_path / "docs"), "--source", "clieval", stack=local_stack
        ).returncode
        == 0
    )
    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        json.dumps(
            {
                "id": "t1",
                "corpus": "cli",
                "kind": "factual",
                "question": "when does the fizzlepop valve open?",
                "source": "fizz.md",
                "section": "Fizz",
                "evidence": "valve opens",
            }
        )
        + "\n"
    )
    no_own_questions = tmp_path / "none"
    no_own_questions.mkdir()
    result = lectern(
        "eval",
        "--gold",
        str(gold),
        "--questions-dir",
        str(no_own_questions),
        "--json",
        stack=local_stack,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["dev/lectern"]
    assert report["overall"]["n"] == 1
    assert set(report["overall"]) == {"n", "recall@1", "recall@5", "recall@10", "mrr@10"}
    assert report["overall"]["recall@1"] == 1.0
    assert report["latency"]["p95_ms"] > 0
    assert report["coverage"]["answerable"] == 1


def test_a_different_embedding_model_is_refused(local_stack: Stack) -> None:
    """Vectors of two models never mix: the service refuses to start with a clear message."""
    env = local_stack.config.extra_env
    env.update({"EMBEDDINGS_PROVIDER": "gemini", "GEMINI_API_KEY": "not-used-before-the-check"})
    try:
        with pytest.raises(StackError) as failure:
            local_stack.restart_service("retrieval")
        assert "holds vectors of local:all-MiniLM-L6-v2-int8" in str(failure.value)
        assert "gemini:gemini-embedding-001" in str(failure.value)
    finally:
        env["EMBEDDINGS_PROVIDER"] = "local"
        env.pop("GEMINI_API_KEY")
        local_stack.processes.pop("retrieval").stop()
        local_stack.start_service("retrieval")
        local_stack.wait_ready()
