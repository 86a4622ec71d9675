"""Developer tools: the `lectern` CLI, the local stack supervisor, the fake Gemini and the
harness of the tests and benchmarks."""

from pathlib import Path

# The repository this package is checked out in (the sample book, the gateway's configuration,
# `.lectern/`); meaningless for an installed wheel, whose commands take paths and URLs instead.
REPO_ROOT = Path(__file__).resolve().parents[3]
