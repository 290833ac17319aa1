"""The real WebUI's page in headless Chromium: enable the PixTention accordion in txt2img, type
a prompt, pin a suggested adapter, Generate, and find the picks under the gallery and the mask
overlay in it. Screenshots go to test-artifacts/real-webui-NAME/.

Needs the ``playwright`` pip package and Debian's ``chromium`` (never ``playwright install``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page(webui):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(120_000)
            yield page
        finally:
            browser.close()


def _set_number(page, elem_id: str, value: int) -> None:
    """A slider's number box (Gradio 3 and 4): type the value and leave the field."""
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Tab")


def test_generate_from_the_accordion_with_a_pin(webui, api, page):
    shots = webui.artifacts
    jobs_before = {job["job"] for job in api.get("/pixtention/v1/masks").json()["masks"]}
    page.goto(webui.url + "/")
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.wait_for(state="visible")
    try:
        # Enable: the checkbox in the accordion's header (A1111 ≥ 1.7, Forge: InputAccordion);
        # ticking it does not open the accordion, a click on the header does.
        accordion = page.locator("#pixtention_txt2img_accordion")
        accordion.locator("#pixtention_txt2img_accordion-visible-checkbox").check()
        pins = page.locator("#pixtention_txt2img_pins textarea, #pixtention_txt2img_pins input")
        if not pins.first.is_visible():
            accordion.locator(".label-wrap").first.click()
        pins.first.wait_for(state="visible")
        assert accordion.locator("#pixtention_txt2img_accordion-visible-checkbox").is_checked()

        prompt.click()
        prompt.fill("")
        prompt.type("a tabby cat, a red sports car", delay=20)
        row = page.locator('#pixtention_txt2img_accordion [data-pixtention-row="tabbycat"]')
        row.wait_for(state="visible")
        row.locator('[data-pixtention-action="pin"]').click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('#pixtention_txt2img_pins textarea, "
            "#pixtention_txt2img_pins input')].some(e => e.value === 'tabbycat')"
        )
        # Show masks lives in the nested "Masks" accordion.
        page.locator("#pixtention_txt2img_masks").get_by_text("Masks", exact=True).first.click()
        page.locator("#pixtention_txt2img_show input").check()

        _set_number(page, "txt2img_steps", 3)
        _set_number(page, "txt2img_width", 64)
        _set_number(page, "txt2img_height", 64)
        page.screenshot(path=str(shots / "browser-before-generate.png"))

        page.locator("#txt2img_generate").click()
        info_text = "() => (document.querySelector('#html_info_txt2img') || {}).innerText || ''"
        page.wait_for_function(f"() => ({info_text})().includes('PixTention')", timeout=600_000)
        text = page.evaluate(info_text)
        page.screenshot(path=str(shots / "browser-after-generate.png"))
    except Exception:
        page.screenshot(path=str(shots / "browser-failure.png"))
        raise

    assert "PixTention error" not in text, text
    assert "tabbycat" in text and '"picks"' in text.replace('\\"', '"'), text
    gallery = page.locator("#txt2img_gallery img")
    page.wait_for_function(
        "() => document.querySelectorAll('#txt2img_gallery img').length >= 2", timeout=60_000
    )
    assert gallery.count() >= 2, "the mask overlay is not in the gallery"
    jobs_after = {job["job"] for job in api.get("/pixtention/v1/masks").json()["masks"]}
    assert jobs_after - jobs_before, "no mask overlay was published for the generation"
