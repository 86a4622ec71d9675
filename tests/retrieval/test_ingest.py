"""Ingestion: reStructuredText and MDX cleaning, incremental re-ingest, folder ingestion inside
the allowed roots, and uploads that must be refused without touching the index."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lectern_dev.harness.books import upload
from lectern_dev.harness.services import admin_headers, internal_headers
from lectern_dev.stack import Stack

RST = b"""\
.. redirect-from::

    Old/Place

.. _calibration:

Calibrating the zorbometer
==========================

.. contents:: Contents
   :depth: 2
   :local:

The zorbometer measures quuxification of the gantry.

.. note::

   Power the zorbometer down before you open it.

Running the calibration
-----------------------

Start the calibration with:

.. code-block:: bash

   ros2 run zorb calibrate --axis pitch

.. toctree::
   :hidden:

   Secret-Page
"""

PAGES = {
    "a.md": "---\ntitle: Alpha page\n---\n\n# Alpha\n\nThe flibbertigibbet spins clockwise.\n\n"
    "## Second\n\nA wobblecrank holds the flibbertigibbet in place.\n",
    "guide/b.md": "# Beta\n\nPlinthwards motion is slow.\n\n## Tuning\n\nSet the glarb gain "
    "to three.\n\n## Limits\n\nNever exceed the snorkel limit.\n",
}


def chapter(stack: Stack, chapter_id: str) -> httpx.Response:
    return httpx.get(
        f"{stack.config.url('retrieval')}/internal/chapters/{chapter_id}",
        headers=internal_headers(stack),
    )


def search(stack: Stack, query: str, **body) -> list[dict]:
    response = httpx.post(
        f"{stack.gateway_url}/api/search", json={"query": query, "top_k": 10, **body}
    )
    assert response.status_code == 200, response.text
    return response.json()["results"]


def chunk_ids(stack: Stack, chapter_id: str) -> set[str]:
    return {
        r["chunk_id"]
        for r in search(stack, "flibbertigibbet glarb snorkel plinthwards", chapter_id=chapter_id)
    }


def chapter_ids(stack: Stack) -> set[str]:
    return {c["id"] for c in httpx.get(f"{stack.gateway_url}/api/chapters").json()["chapters"]}


def test_rst_is_cleaned_and_structured(local_stack: Stack) -> None:
    response = upload(local_stack, "rstdoc", {"howto/zorb.rst": RST})
    assert response.status_code == 200, response.text
    body = chapter(local_stack, "rstdoc--howto--zorb").json()
    assert body["title"] == "Calibrating the zorbometer"
    assert body["source_path"] == "howto/zorb.rst"
    assert body["url"] == "/docs/rstdoc/howto/zorb"
    text = body["text"]
    assert "```bash\nros2 run zorb calibrate --axis pitch\n```" in text
    assert "Note:" in text and "Power the zorbometer down" in text
    for boilerplate in (
        "redirect-from",
        "Old/Place",
        "contents::",
        "toctree",
        "Secret-Page",
        "_calibration",
    ):
        assert boilerplate not in text
    assert [s["heading"] for s in body["sections"]] == [
        "Calibrating the zorbometer",
        "Running the calibration",
    ]
    hit = search(local_stack, "how do I calibrate the zorbometer pitch axis")[0]
    assert hit["chapter_id"] == "rstdoc--howto--zorb"
    assert hit["section"] == "Running the calibration"


def test_a_new_title_re_embeds_chunks_whose_passages_it_changes(local_stack: Stack) -> None:
    """The title heads every passage but is not part of a chunk's id: a chunk kept under a
    longer title is cut into more passages, and gets them all embedded, not just some."""
    body = "The zorbometer gantry " + " ".join(f"quux{i} glarb" for i in range(60)) + ".\n"
    first = upload(local_stack, "retitle", {"x.md": f"---\ntitle: Short\n---\n\n{body}"}).json()
    ids = chunk_ids(local_stack, "retitle--x")
    long_title = "A very long title " + "with many many words " * 8
    again = upload(
        local_stack, "retitle", {"x.md": f"---\ntitle: {long_title}\n---\n\n{body}"}
    ).json()
    assert chunk_ids(local_stack, "retitle--x") == ids  # the same chunk, kept
    assert again["updated"] == 1 and again["embeddings_computed"] == first["chunks"] == 1
    dense = httpx.post(
        f"{local_stack.config.url('retrieval')}/internal/search",
        json={"query": "zorbometer gantry quux", "mode": "dense", "chapter_id": "retitle--x"},
        headers=internal_headers(local_stack),
    ).json()["results"]
    assert [r["chunk_id"] for r in dense] == sorted(ids)


def test_reingest_is_incremental(local_stack: Stack) -> None:
    first = upload(local_stack, "incr", {**PAGES, "c.rst": RST}).json()
    assert (first["new"], first["updated"], first["unchanged"], first["removed"]) == (3, 0, 0, 0)
    assert first["embeddings_computed"] == first["chunks"] > 3
    alpha_ids = chunk_ids(local_stack, "incr--a")
    beta_hash = chapter(local_stack, "incr--guide--b").json()["content_hash"]
    alpha_hash = chapter(local_stack, "incr--a").json()["content_hash"]

    again = upload(local_stack, "incr", {**PAGES, "c.rst": RST}).json()
    assert (again["new"], again["updated"], again["unchanged"], again["removed"]) == (0, 0, 3, 0)
    assert again["embeddings_computed"] == 0

    # Change one section of b, drop c: only b's changed chunk is embedded, c disappears.
    changed = {**PAGES, "guide/b.md": PAGES["guide/b.md"].replace("three", "seven")}
    third = upload(local_stack, "incr", changed).json()
    assert (third["new"], third["updated"], third["unchanged"], third["removed"]) == (0, 1, 1, 1)
    assert third["embeddings_computed"] == 1
    assert chunk_ids(local_stack, "incr--a") == alpha_ids
    assert chapter(local_stack, "incr--a").json()["content_hash"] == alpha_hash
    beta = chapter(local_stack, "incr--guide--b").json()
    assert beta["content_hash"] != beta_hash and "glarb gain to seven" in beta["text"]
    assert chapter(local_stack, "incr--c").status_code == 404
    assert "incr--c" not in chapter_ids(local_stack)
    texts = [r["text"] for r in search(local_stack, "glarb gain", chapter_id="incr--guide--b")]
    assert any("seven" in t for t in texts) and not any("three" in t for t in texts)
    assert not [
        r
        for r in search(local_stack, "zorbometer quuxification")
        if r["chapter_id"].startswith("incr--") and "zorbometer" in r["text"]
    ]


def test_folder_ingest_inside_allowed_roots(local_stack: Stack, ingest_root: Path) -> None:
    folder = ingest_root / "mini"
    (folder / "part").mkdir(parents=True)
    (folder / "intro.md").write_text("# Intro\n\nThe snozzberry reactor hums.\n")
    (folder / "part" / "deep.rst").write_bytes(RST)
    (folder / "notes.txt").write_text("ignored: not a document")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "x.md").write_text("# Hidden\n")
    response = httpx.post(
        f"{local_stack.gateway_url}/api/admin/ingest-path",
        json={"source": "mini", "path": str(folder)},
        headers=admin_headers(local_stack),
        timeout=300,
    )
    assert response.status_code == 200, response.text
    assert response.json()["files"] == 2
    assert {"mini--intro", "mini--part--deep"} <= chapter_ids(local_stack)
    assert "mini--hidden--x" not in chapter_ids(local_stack)


@pytest.mark.parametrize("path", ["/etc", "/work/main/../main", "{root}/../..", "relative/path"])
def test_folder_outside_allowed_roots_is_refused(
    local_stack: Stack, ingest_root: Path, path: str
) -> None:
    before = chapter_ids(local_stack)
    response = httpx.post(
        f"{local_stack.gateway_url}/api/admin/ingest-path",
        json={"source": "outside", "path": path.format(root=ingest_root)},
        headers=admin_headers(local_stack),
        timeout=60,
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "path_not_allowed"
    assert chapter_ids(local_stack) == before


# Found by tests/security/test_fuzz_routes.py: the operating system refuses these paths
# (`embedded null byte`, ENAMETOOLONG) and both were a 500 after the root check.
UNREADABLE_PATHS = {
    "nul": "{root}/docs\u0000x",
    "part over 255 bytes": "{root}/" + "a" * 256,
    "part over 255 bytes in UTF-8": "{root}/" + "\u00e9" * 128,
    "control character": "{root}/docs\u0007",
}


@pytest.mark.parametrize("path", UNREADABLE_PATHS.values(), ids=UNREADABLE_PATHS.keys())
def test_a_path_the_system_cannot_open_is_a_422(
    local_stack: Stack, ingest_root: Path, path: str
) -> None:
    response = httpx.post(
        f"{local_stack.gateway_url}/api/admin/ingest-path",
        json={"source": "unopenable", "path": path.format(root=ingest_root)},
        headers=admin_headers(local_stack),
        timeout=60,
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["request_id"]
    assert [d["field"] for d in error["details"]] == ["path"]


def test_symlink_out_of_the_root_is_refused(local_stack: Stack, ingest_root: Path) -> None:
    folder = ingest_root / "linky"
    folder.mkdir()
    (folder / "ok.md").write_text("# Fine\n\ntext\n")
    (folder / "passwd.md").symlink_to("/etc/passwd")
    response = httpx.post(
        f"{local_stack.gateway_url}/api/admin/ingest-path",
        json={"source": "linky", "path": str(folder)},
        headers=admin_headers(local_stack),
        timeout=60,
    )
    assert response.status_code == 403
    assert "linky--ok" not in chapter_ids(local_stack)


BAD_UPLOADS = {
    "binary": ({"good.md": "# Good\n\nfine", "image.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00"}, 415),
    "not utf-8": ({"good.md": "# Good\n\nfine", "latin.md": "caf\xe9".encode("latin-1")}, 415),
    "unsupported type": ({"good.md": "# Good\n\nfine", "pic.png": b"PNG"}, 415),
    "bad front matter": (
        {"good.md": "# Good\n\nfine", "fm.md": "---\ntitle: [oops\n---\n# X"},
        422,
    ),
    "path traversal": ({"good.md": "# Good\n\nfine", "../escape.md": "# Escape"}, 422),
    "absolute path": ({"good.md": "# Good\n\nfine", "/etc/x.md": "# X"}, 422),
    "same chapter twice": ({"good.md": "# Good\n\nfine", "good.mdx": "# Again"}, 422),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_upload_is_refused_and_changes_nothing(local_stack: Stack, case: str) -> None:
    base = upload(local_stack, "guarded", {"good.md": "# Good\n\nThe guarded page."})
    assert base.status_code == 200
    before = chapter(local_stack, "guarded--good").json()
    files, status = BAD_UPLOADS[case]
    response = upload(local_stack, "guarded", files)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert chapter(local_stack, "guarded--good").json() == before
    assert not [
        c for c in chapter_ids(local_stack) if c.startswith("guarded--") and c != "guarded--good"
    ]


def test_malformed_requests_are_refused(local_stack: Stack) -> None:
    url = f"{local_stack.gateway_url}/api/admin/ingest"
    headers = admin_headers(local_stack)
    not_multipart = httpx.post(url, json={"source": "x"}, headers=headers)
    assert not_multipart.status_code == 415
    broken = httpx.post(
        url,
        content=b"--xyz\r\ngarbage",
        headers={**headers, "content-type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code in (400, 422)
    no_files = httpx.post(
        url, data={"source": "x"}, files=[("other", ("a", b"", "text/plain"))], headers=headers
    )
    assert no_files.status_code == 422
    bad_source = upload(local_stack, "Bad Source!", {"a.md": "# A"})
    assert bad_source.status_code == 422
    assert bad_source.json()["error"]["details"][0]["field"] == "source"
    huge = upload(local_stack, "huge", {"big.md": b"# Big\n\n" + b"word " * 600_000})
    assert huge.status_code == 413
    assert "huge--big" not in chapter_ids(local_stack)
