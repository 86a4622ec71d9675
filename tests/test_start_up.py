"""Services that never call the model start without google-genai (seconds of CPU to import):
a service the supervisor restarts answers sooner. Each import runs in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["lectern_profile.app", "lectern_retrieval.app"])
def test_a_service_without_a_model_does_not_import_the_model_client(module: str) -> None:
    code = f"import sys, {module}; print('google.genai' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
