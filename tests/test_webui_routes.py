"""REST routes under /pixtention/v1 through FastAPI's TestClient, with and without --api-auth;
indexing runs in a background thread and never blocks a request."""

from __future__ import annotations

import threading

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pixtention.webui.masks import MaskStore
from pixtention.webui.routes import build_router, parse_api_auth
from pixtention.webui.service import Core, LibraryService
from tests.webui_support import THEMES, tiny_library, write_tiny_library  # noqa: F401


def client_for(service, masks=None, auth=None) -> TestClient:
    app = FastAPI()
    app.include_router(build_router(service, masks or MaskStore(), api_auth=auth))
    return TestClient(app)


def test_status_suggest_adapters_clusters(tiny_library):  # noqa: F811
    loras, store = tiny_library
    client = client_for(LibraryService(loras, store, captions=False))
    status = client.get("/pixtention/v1/status").json()
    assert status["state"] == "ready" and status["adapters"] == len(THEMES)
    answer = client.post(
        "/pixtention/v1/suggest",
        json={"prompt": "a tabby cat, a red sports car", "args": {"k": 2}},
    )
    assert answer.status_code == 200
    picks = answer.json()["picks"]
    assert {p["name"]: p["phrase"] for p in picks} == {
        "tabbycat": "a tabby cat",
        "redcar": "a red sports car",
    }
    assert all(isinstance(p["score"], float) and p["triggers"] for p in picks)
    ranked = answer.json()["suggestions"]  # the most relevant adapters, picked or not
    assert {"tabbycat", "redcar"} <= {s["name"] for s in ranked}
    assert [s["score"] for s in ranked] == sorted((s["score"] for s in ranked), reverse=True)
    adapters = client.get("/pixtention/v1/adapters", params={"limit": 2}).json()
    assert adapters["total"] == len(THEMES) and len(adapters["adapters"]) == 2
    named = client.get("/pixtention/v1/adapters", params={"name": "CAR"}).json()
    assert [a["name"] for a in named["adapters"]] == ["redcar"]
    clusters = client.get("/pixtention/v1/clusters").json()["clusters"]
    assert sum(c["size"] for c in clusters) == len(THEMES) and all(c["label"] for c in clusters)


def test_suggest_rejects_bad_input_with_a_reason(tiny_library):  # noqa: F811
    loras, store = tiny_library
    client = client_for(LibraryService(loras, store, captions=False))
    missing = client.post("/pixtention/v1/suggest", json={"args": {}})
    assert missing.status_code == 422 and "prompt" in missing.json()["detail"]
    bad = client.post("/pixtention/v1/suggest", json={"prompt": "cat", "args": {"k": 99}})
    assert bad.status_code == 422
    assert bad.json()["detail"] == "PixTention args: k=99 is outside 0..16"


def test_api_auth_is_honoured(tiny_library):  # noqa: F811
    loras, store = tiny_library
    client = client_for(LibraryService(loras, store, captions=False), auth="alice:s3cret,bob:pw")
    assert client.get("/pixtention/v1/status").status_code == 401
    assert client.get("/pixtention/v1/status", auth=("alice", "wrong")).status_code == 401
    assert client.get("/pixtention/v1/status", auth=("carol", "s3cret")).status_code == 401
    assert client.get("/pixtention/v1/status", auth=("alice", "s3cret")).status_code == 200
    assert client.get("/pixtention/v1/clusters", auth=("bob", "pw")).status_code == 200
    assert parse_api_auth("") == {} and parse_api_auth("a:b:c") == {"a": "b:c"}
    with pytest.raises(ValueError, match="not user:password"):
        parse_api_auth("nocolon")


def test_masks_routes():
    masks = MaskStore(max_jobs=2)
    client = client_for(LibraryService("/nonexistent", "/nonexistent-store"), masks)
    for job in ("a", "b", "c"):
        masks.put(job, 0, b"\x89PNG-" + job.encode())
    listing = client.get("/pixtention/v1/masks").json()["masks"]
    assert [entry["job"] for entry in listing] == ["c", "b"]  # newest first, oldest dropped
    png = client.get(listing[0]["images"][0]["url"])
    assert png.status_code == 200 and png.content == b"\x89PNG-c"
    assert png.headers["content-type"] == "image/png"
    assert client.get("/pixtention/v1/masks/a/0.png").status_code == 404
    status = client.get("/pixtention/v1/status").json()
    assert status["state"] == "missing" and "/nonexistent" in status["error"]


def paused_at_embed(tmp_path):
    """A service whose real indexer stops at its first "embed" event until ``release`` is set."""
    from pixtention.curator.indexer import index_folder

    write_tiny_library(tmp_path / "Lora")
    release, reached = threading.Event(), threading.Event()

    def paused_index(folder, store, **kwargs):
        def progress(event):
            kwargs["progress"](event)
            if event.stage == "embed" and not reached.is_set():
                reached.set()
                assert release.wait(30), "test never released the indexer"

        return index_folder(folder, store, **{**kwargs, "progress": progress})

    default = Core.default()
    core = Core(index_folder=paused_index, open_library=default.open_library, select=default.select)
    service = LibraryService(tmp_path / "Lora", tmp_path / "store", core=core, captions=False)
    return service, release, reached


def test_indexing_runs_in_the_background_and_reports_progress(tmp_path):
    """A slow indexer: requests keep answering while it runs; progress shows in status."""
    service, release, reached = paused_at_embed(tmp_path)
    client = client_for(service)
    assert client.get("/pixtention/v1/status").json()["state"] == "idle"
    started = client.post("/pixtention/v1/index")
    assert started.status_code == 202 and started.json()["started"] is True
    assert reached.wait(60)
    busy = client.get("/pixtention/v1/status").json()  # answered while the indexer is blocked
    again = client.post("/pixtention/v1/index").json()
    assert busy["state"] == "indexing" and busy["stage"] == "embed" and busy["total"] > 0
    assert again["started"] is False
    release.set()
    final = service.wait(60)
    assert final.state == "ready" and final.adapters == len(THEMES)
    assert client.get("/pixtention/v1/adapters").json()["total"] == len(THEMES)


def test_cancel_and_errors_show_in_status(tmp_path):
    def failing(folder, store, **kwargs):
        raise OSError("disk full")

    default = Core.default()
    core = Core(index_folder=failing, open_library=default.open_library, select=default.select)
    service = LibraryService(tmp_path, tmp_path / "store", core=core)
    client = client_for(service)
    client.post("/pixtention/v1/index")
    status = service.wait(10)
    assert status.state == "error" and status.error == "OSError: disk full"
    assert client.delete("/pixtention/v1/index").json()["cancelled"] is False


def test_cancelling_a_run_shows_cancelled_and_the_next_run_completes(tmp_path):
    """DELETE while the real indexer is busy: status says "cancelled", a re-run finishes."""
    service, release, reached = paused_at_embed(tmp_path)
    client = client_for(service)
    client.post("/pixtention/v1/index")
    assert reached.wait(60)
    answer = client.delete("/pixtention/v1/index").json()
    assert answer["cancelled"] is True and answer["status"]["state"] == "indexing"
    release.set()
    status = service.wait(60)
    assert status.state == "cancelled", status
    assert client.get("/pixtention/v1/status").json()["state"] == "cancelled"
    assert client.post("/pixtention/v1/index").json()["started"] is True
    final = service.wait(60)
    assert final.state == "ready" and final.adapters == len(THEMES)
