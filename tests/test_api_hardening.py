"""Hostile API args, pasted infotexts and REST requests (issue 12, WebUI side): each gets a
4xx or a clear ``ArgsError``, never a 500 or an exception that escapes a paste reader."""

from __future__ import annotations

import json
import threading
import types

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pixtention.webui.args import ArgsError, Pin, parse_args
from pixtention.webui.infotext import decode, field_reader
from pixtention.webui.masks import MaskStore
from pixtention.webui.routes import build_router, route_credentials, routes_enabled
from pixtention.webui.service import LibraryService
from tests.webui_support import tiny_library  # noqa: F401

URL = "/pixtention/v1"


@pytest.mark.parametrize(
    "values",
    [
        [{"pins": [{"name": "cat", "weight": float("inf")}]}],
        [{"pins": [{"name": "cat", "weight": 10**400}]}],
        [{"pins": "cat:" + "9" * 400}],
        [{"pins": "cat:1e308"}],
        [{"pins": [{"name": "cat", "weight": float("nan")}]}],
        [{"k": 10**400}],
        [{"k": "1" * 5000}],
        5,
        True,
        1.5,
        "auto",
        [{"pins": [f"a{i}" for i in range(17)]}],
        [{"pins": [{"name": "cat", "hash": ["x"]}]}],
    ],
)
def test_bad_api_values_are_args_errors(values):
    with pytest.raises(ArgsError) as caught:
        parse_args(values)
    assert len(str(caught.value)) < 200  # one readable line, not the value echoed back


PICK = {"name": "cat", "hash": None, "w": 0.8, "phrase": "a cat"}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"v": 1, "picks": [{**PICK, "w": 1e999}]}),  # Infinity after json.loads
        json.dumps({"v": 1, "picks": [{**PICK, "w": "heavy"}]}),
        json.dumps({"v": 1, "picks": [{**PICK, "w": []}]}),
        json.dumps({"v": 1, "picks": [{**PICK, "w": 10**400}]}),
        json.dumps({"v": 1, "k": 10**400}),
        json.dumps({"v": 1, "picks": [dict(PICK, name=f"a{i}") for i in range(10_000)]}),
        "[" * 100_000 + "]" * 100_000,
        '{"v": 1, "picks": ' + "[" * 5000 + "]" * 5000 + "}",
        json.dumps({"v": True}),
        "not json",
    ],
)
def test_pasted_infotexts_never_escape_the_paste_readers(text):
    with pytest.raises(ArgsError):
        decode(text)
    for name in ("k", "pins", "mode"):
        assert field_reader(name)({"PixTention": text}) is None  # the paste goes on without it


def test_a_good_infotext_still_restores_its_picks():
    text = json.dumps({"v": 1, "mode": "auto", "k": 3, "picks": [PICK]})
    restored = decode(text)
    assert restored.pins == (Pin("cat", None, 0.8, "a cat"),) and restored.k == 1


def _client(service, **kwargs) -> TestClient:
    app = FastAPI()
    app.include_router(build_router(service, MaskStore(), **kwargs))
    return TestClient(app)


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "a cat", "args": 5},
        {"prompt": "a cat", "args": True},
        {"prompt": "a cat", "args": 1.5},
        {"prompt": "a cat", "args": {"k": 10**400}},
        {"prompt": "a cat", "base_model": "my own model"},
        {"prompt": "a cat", "base_model": ["sd1"]},
    ],
)
def test_suggest_answers_bad_requests_with_422(tiny_library, body):  # noqa: F811
    client = _client(LibraryService(*tiny_library, captions=False))
    answer = client.post(f"{URL}/suggest", content=json.dumps(body))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]


def test_suggest_takes_a_lone_surrogate_and_refuses_a_huge_body(tiny_library):  # noqa: F811
    client = _client(LibraryService(*tiny_library, captions=False))
    answer = client.post(
        f"{URL}/suggest",
        content=b'{"prompt": "a tabby cat \\ud800, a red sports car"}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    assert {p["name"] for p in answer.json()["picks"]} >= {"tabbycat"}
    huge = client.post(f"{URL}/suggest", content=b'{"prompt": "' + b"a" * (2 << 20) + b'"}')
    assert huge.status_code == 413


def test_listings_survive_undecodable_names_and_infinite_weights(tiny_library):  # noqa: F811
    service = LibraryService(*tiny_library, captions=False)
    library = service.library()
    odd = library.records[0]
    patched = types.SimpleNamespace(**{**vars(odd), "name": "caf\udce9", "preferred_weight": 1e999})
    records = [patched, *library.records[1:]]
    service._library = types.SimpleNamespace(records=records, find=library.find)
    client = _client(service)
    for route in ("/adapters", "/clusters"):
        answer = client.get(URL + route)
        assert answer.status_code == 200, answer.text
    listed = client.get(f"{URL}/adapters").json()["adapters"]
    first = next(a for a in listed if a["name"].startswith("caf"))
    assert first["name"] == "caf\ufffd" and first["preferred_weight"] is None


def test_routes_follow_the_webuis_own_api_switch_and_logins(tmp_path):
    opts = types.SimpleNamespace
    assert not routes_enabled(opts(api=False, nowebui=False))
    assert routes_enabled(opts(api=True)) and routes_enabled(opts(api=False, nowebui=True))
    assert route_credentials(opts(api_auth="a:1", gradio_auth="g:2")) == {"a": "1"}
    assert route_credentials(opts(api_auth=None, gradio_auth="g:2,h:3:x")) == {
        "g": "2",
        "h": "3:x",
    }
    path = tmp_path / "logins.txt"
    path.write_text("f:4\n\ni:5,j:6\n", encoding="utf-8")
    both = route_credentials(opts(api_auth=None, gradio_auth="g:2", gradio_auth_path=str(path)))
    assert both == {"g": "2", "f": "4", "i": "5", "j": "6"}
    assert route_credentials(opts(api_auth=None, gradio_auth=None)) == {}


def test_a_ui_login_guards_the_routes(tiny_library):  # noqa: F811
    service = LibraryService(*tiny_library, captions=False)
    credentials = route_credentials(types.SimpleNamespace(api_auth=None, gradio_auth="u:pw"))
    client = _client(service, credentials=credentials)
    assert client.get(f"{URL}/adapters").status_code == 401
    assert client.get(f"{URL}/adapters", auth=("u", "pw")).status_code == 200


def test_many_concurrent_readers_open_the_store_once(tiny_library):  # noqa: F811
    from pixtention.webui.service import Core

    default = Core.default()
    opened = []

    def counting_open(store):
        opened.append(store)
        return default.open_library(store)

    core = Core(
        index_folder=default.index_folder, open_library=counting_open, select=default.select
    )
    service = LibraryService(*tiny_library, core=core, captions=False)
    threads = [threading.Thread(target=service.status) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 1 and service.status().state == "ready"


def test_pins_count_towards_k(tiny_library):  # noqa: F811
    service = LibraryService(*tiny_library, captions=False)
    args = parse_args([{"k": 1, "pins": "tabbycat, redcar"}])
    picks = service.suggest("a tabby cat, a red sports car", args)
    assert [p.name for p in picks] == ["tabbycat"]


@pytest.mark.parametrize(("preferred", "expected"), [(1e308, 2.0), (-1e308, -2.0), (0.7, 0.7)])
def test_metadata_weights_are_clamped_and_say_so(preferred, expected):
    from pixtention.selector.triggers import choose_weight

    weight, source = choose_weight(preferred, "civitai")
    assert weight == expected
    assert ("clamped" in source) == (expected != preferred)


def test_retrieval_reads_a_bounded_prefix_of_a_huge_prompt(tiny_library):  # noqa: F811
    from pixtention.webui.service import MAX_QUERY_CHARS, Core

    default = Core.default()
    seen = []

    def recording_select(prompt, library, **kwargs):
        seen.append(len(prompt))
        return default.select(prompt, library, **kwargs)

    core = Core(
        index_folder=default.index_folder,
        open_library=default.open_library,
        select=recording_select,
    )
    service = LibraryService(*tiny_library, core=core, captions=False)
    picks = service.suggest("a tabby cat, " + "word " * 200_000, parse_args([{"k": 1}]))
    assert seen == [MAX_QUERY_CHARS] and [p.name for p in picks] == ["tabbycat"]


def test_status_answers_while_suggestions_wait_for_the_selector(tiny_library):  # noqa: F811
    from pixtention.webui.service import Core

    default = Core.default()
    release = threading.Event()
    entered = threading.Semaphore(0)

    def blocked_select(prompt, library, **kwargs):
        entered.release()
        release.wait(60)
        return []

    core = Core(
        index_folder=default.index_folder, open_library=default.open_library, select=blocked_select
    )
    client = _client(LibraryService(*tiny_library, core=core, captions=False))
    workers = [
        threading.Thread(
            target=client.post, args=(f"{URL}/suggest",), kwargs={"json": {"prompt": "a cat"}}
        )
        for _ in range(60)
    ]
    for worker in workers:
        worker.start()
    try:
        assert entered.acquire(timeout=60)  # suggestions are inside the selector, blocked
        answers = []
        status = threading.Thread(
            target=lambda: answers.append(client.get(f"{URL}/status").json()["state"])
        )
        status.start()
        status.join(20)  # with suggest on the shared pool, status waits for the selector
        assert answers == ["ready"]
    finally:
        release.set()
        for worker in workers:
            worker.join(60)
