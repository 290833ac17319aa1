"""The accordion served by Gradio on localhost and driven by headless Chromium (Playwright):
type a prompt → the debounced JavaScript fetches suggestions; pin and add act on the page;
the enable checkbox reaches Python; a screenshot is kept in test-artifacts/ui.png (and copied
to docs/ui.png for the README when that is missing or PIXTENTION_UPDATE_SCREENSHOT is set).

Needs the ``playwright`` pip package and Debian's ``chromium`` (never ``playwright install``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import types
from pathlib import Path

import pytest

from tests.webui_support import ROOT, tiny_library  # noqa: F401

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _page(library):
    """A txt2img-like Gradio page: prompt box, our accordion, and a probe of the args."""
    import gradio as gr
    from fastapi import FastAPI

    from pixtention.webui.args import parse_args
    from pixtention.webui.hooks import ScriptHooks
    from pixtention.webui.routes import build_router
    from pixtention.webui.runtime import Runtime
    from pixtention.webui.service import LibraryService

    loras, store = library
    shared = types.SimpleNamespace(
        opts=None, cmd_opts=types.SimpleNamespace(api_auth=None), sd_model=None
    )
    runtime = Runtime(shared, LibraryService(loras, store, captions=False))
    hooks = ScriptHooks(runtime)
    css = (ROOT / "style.css").read_text(encoding="utf-8")
    with gr.Blocks(css=css, title="PixTention") as demo:
        gr.Textbox(label="Prompt", elem_id="txt2img_prompt", lines=2)
        built = hooks.ui(False, None)
        probe = gr.Button("probe", elem_id="probe")
        probed = gr.Textbox(label="probe result", elem_id="probe_result")

        def describe(*values):
            args = parse_args(values)
            pins = ",".join(pin.name for pin in args.pins)
            return f"enabled={args.enabled} mode={args.mode} k={args.k} pins={pins}"

        probe.click(fn=describe, inputs=built.components, outputs=[probed])
    app = FastAPI()
    app.include_router(build_router(runtime.service, runtime.masks))
    return gr.mount_gradio_app(app, demo.queue(), path="/")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tiny_library):  # noqa: F811
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(_page(tiny_library), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "gradio app did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def test_type_prompt_see_suggestions_pin_add_and_enable(served, browser):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    # The WebUI injects javascript/*.js into its page; here the browser does (Gradio 3 and 4).
    page.add_init_script(path=str(ROOT / "javascript" / "pixtention.js"))
    page.goto(served)
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.wait_for(timeout=30_000)
    page.get_by_text("PixTention", exact=True).first.click()  # open the accordion
    page.locator("#pixtention_txt2img_enabled input").wait_for(timeout=10_000)

    prompt.click()
    prompt.type("a tabby cat, a red sports car", delay=10)
    row = page.locator('[data-pixtention-row="tabbycat"]')
    row.wait_for(timeout=30_000)
    assert page.locator('[data-pixtention-row="redcar"]').count() == 1
    assert "a tabby cat" in row.inner_text()
    status = page.locator("#pixtention_txt2img_status [data-pixtention-state]")
    assert status.get_attribute("data-pixtention-state") == "ready"

    page.locator("#pixtention_txt2img_enabled input").check()
    row.locator('[data-pixtention-action="pin"]').click()
    pins = page.locator("#pixtention_txt2img_pins textarea, #pixtention_txt2img_pins input")
    page.wait_for_function(
        "() => document.querySelector('#pixtention_txt2img_pins textarea, "
        "#pixtention_txt2img_pins input').value === 'tabbycat'"
    )
    assert pins.first.input_value() == "tabbycat"

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "ui.png"
    page.locator("#pixtention_txt2img_accordion").screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    docs_shot = ROOT / "docs" / "ui.png"  # README picture: refreshed on request, not every run
    if not docs_shot.exists() or os.environ.get("PIXTENTION_UPDATE_SCREENSHOT"):
        docs_shot.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, docs_shot)

    page.locator('[data-pixtention-row="redcar"] [data-pixtention-action="add"]').click()
    page.wait_for_function(
        "() => document.querySelector('#txt2img_prompt textarea').value.includes('<lora:redcar:0.8>')"
    )
    page.locator("#probe").click()
    result = page.locator("#probe_result textarea")
    page.wait_for_function(
        "() => document.querySelector('#probe_result textarea').value.startsWith('enabled=')"
    )
    assert result.input_value() == "enabled=True mode=auto k=3 pins=tabbycat"
    page.close()


def _open_accordion(browser, served: str):
    """A page of the served UI with PixTention's accordion open: (page, prompt box)."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.add_init_script(path=str(ROOT / "javascript" / "pixtention.js"))
    page.goto(served)
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.wait_for(timeout=30_000)
    page.get_by_text("PixTention", exact=True).first.click()
    return page, prompt


def test_editing_exclusions_or_k_refreshes_the_suggestions(served, browser):
    """The table follows the settings it depends on, not only the prompt (typed by hand)."""
    page, prompt = _open_accordion(browser, served)
    prompt.click()
    prompt.type("a tabby cat, a red sports car", delay=10)
    page.locator('[data-pixtention-row="tabbycat"]').wait_for(timeout=30_000)
    rows = page.locator("[data-pixtention-row]")
    assert rows.count() >= 2

    exclude = page.locator(
        "#pixtention_txt2img_exclude textarea, #pixtention_txt2img_exclude input"
    )
    exclude.first.click()
    exclude.first.type("tabbycat", delay=10)
    page.locator('[data-pixtention-row="tabbycat"]').wait_for(state="detached", timeout=30_000)
    assert page.locator('[data-pixtention-row="redcar"]').count() == 1

    k = page.locator("#pixtention_txt2img_k input[type=number]")
    k.fill("1")
    k.dispatch_event("input")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-pixtention-row]').length === 1", timeout=30_000
    )
    page.close()


def test_a_relevant_adapter_not_picked_is_listed_and_its_pin_applies_it(served, browser):
    """With K=1 one of the two concepts is picked; the other is listed under the table as
    relevant but not applied, and its Pin makes it the pick."""
    page, prompt = _open_accordion(browser, served)
    k = page.locator("#pixtention_txt2img_k input[type=number]")
    k.fill("1")
    k.dispatch_event("input")
    prompt.click()
    prompt.type("a tabby cat, a red sports car", delay=10)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-pixtention-row]').length === 1", timeout=30_000
    )
    picked = page.locator("[data-pixtention-row]").first.get_attribute("data-pixtention-row")
    (other,) = {"tabbycat", "redcar"} - {picked}
    listed = page.locator(f'[data-pixtention-more="{other}"]')
    listed.wait_for(timeout=30_000)
    assert page.locator(f'[data-pixtention-more="{picked}"]').count() == 0
    listed.locator('[data-pixtention-action="pin"]').click()
    page.locator(f'[data-pixtention-row="{other}"]').wait_for(timeout=30_000)
    pins = page.locator("#pixtention_txt2img_pins textarea, #pixtention_txt2img_pins input")
    assert pins.first.input_value() == other
    page.close()
