"""The web page end to end in headless Chromium (Debian's /usr/bin/chromium driven by Playwright's Python API): a
real uvicorn server with a real pipeline holding one tiny component of every kind; images go in through the file
input; the verdict and every kind of evidence must render, errors must show, the page must be keyboard-usable and
load nothing from elsewhere. ``GENATTR_UPDATE_SCREENSHOT=1`` also writes docs/web-page.png.

Skipped (with the reason) when Playwright or Chromium is missing, unless ``GENATTR_REQUIRE_BROWSER=1`` (CI)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GENATTR_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("GENATTR_REQUIRE_BROWSER") == "1"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "web-page.png"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (pip install -e '.[dev]')"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set GENATTR_CHROMIUM)"
    return None


def _require_browser() -> None:
    why = _missing()
    if why is not None:
        if REQUIRED:
            pytest.fail(f"GENATTR_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uvicorn serving the showcase pipeline on a free loopback port, in a thread of this process."""
    _require_browser()
    import uvicorn

    from genattr.registry import Registry
    from genattr.service import ServiceSettings, create_app
    from tests.service.showcase import IDS, build_showcase

    d = tmp_path_factory.mktemp("browser")
    pipe, files = build_showcase(d)
    reg = Registry.open(f"sqlite:///{d / 'registry.db'}")
    for name, mid in IDS.items():
        reg.add_model(name=name, kind="keyed-user" if name in ("alice", "bob") else "zoo", architecture="dcgan",
                      sha256=mid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServiceSettings(), pipeline=pipe, registry=reg)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    paths = []
    for name, data in files.items():
        (d / name).write_bytes(data)
        paths.append(d / name)
    (d / "notes.txt").write_text("not an image")
    yield {"url": f"http://127.0.0.1:{port}", "paths": paths, "text": d / "notes.txt"}
    srv.should_exit = True
    thread.join(timeout=10)
    reg.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = ctx.new_page()
    outside: list[str] = []
    pg.on("request", lambda r: outside.append(r.url) if not r.url.startswith((server["url"], "data:", "blob:"))
          else None)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server["url"] + "/")
    yield pg
    assert outside == [], f"the page loaded something from elsewhere: {outside}"
    assert errors == [], f"JavaScript errors: {errors}"
    ctx.close()


def test_every_kind_of_evidence_renders(page, server) -> None:
    from tests.service.showcase import IMAGES

    page.get_by_label("Also try seed reconstruction").check()
    page.set_input_files("#files", [str(p) for p in server["paths"]])
    page.wait_for_selector("text=Done: 5 images analysed.", timeout=60_000)
    cards = page.locator("article.result")
    assert cards.count() == 5
    # verdicts, in upload order
    want = [answer for _, answer in IMAGES.values()]
    assert [cards.nth(i).get_attribute("data-answer") for i in range(5)] == want
    heads = [cards.nth(i).locator("h2").inner_text() for i in range(5)]
    assert heads[0] == "Made by gen-a" and heads[1] == "Made by alice" and heads[4].startswith("Unknown source")
    assert [cards.nth(i).locator(".filename").inner_text() for i in range(5)] == list(IMAGES)
    assert "%" in cards.nth(0).locator(".confidence-value").inner_text()

    log, keys, fp, clf = cards.nth(0), cards.nth(1), cards.nth(2), cards.nth(3)
    # the log proof
    assert "Found: this exact image is entry 0" in log.locator("[data-method=log]").inner_text()
    assert log.locator("[data-method=log] summary", has_text="inclusion proof").count() == 1
    assert "Not needed: the generation log already answered." in log.locator("[data-method=classifier]").inner_text()
    # keys fired
    k = keys.locator("[data-method=kim-keys]").inner_text()
    assert "1 of 2 keys fired" in k and "alice" in k and "p = " in k
    # decoded bits with the p-value
    f = fp.locator("[data-method=yu2022]").inner_text()
    assert "Decoded 32 of 32 bits matching the code of user carol" in f and "p = " in f
    assert fp.locator("[data-method=yu2022] .bits").count() == 1
    # the classifier's top-3 and the detector's score against its threshold
    assert clf.locator("[data-method=classifier] tbody tr").count() == 3
    d = clf.locator("[data-method=flipad]").inner_text()
    assert "Detector for gen-a: score" in d and "threshold" in d
    # the reconstruction beside the image
    rec = clf.locator("[data-method=seed-reconstruction] img.reconstruction")
    assert rec.count() == 1 and rec.get_attribute("src").startswith("data:image/png;base64,")
    assert rec.evaluate("img => img.complete && img.naturalWidth") == 32
    assert clf.locator("[data-method=seed-reconstruction] figure").count() == 2
    assert page.locator("#models li").count() == 5  # the registered models, from GET /v1/models
    assert "32×32" in page.locator("#expected-size").inner_text()

    if os.environ.get("GENATTR_UPDATE_SCREENSHOT") == "1":
        _save_screenshot(page.screenshot(full_page=True))


def _save_screenshot(png: bytes) -> None:
    """docs/web-page.png, reduced to 128 flat colours (a third of the size; the page has few colours)."""
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(png)).convert("RGB")
    im.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(SCREENSHOT, optimize=True)


def test_bad_upload_shows_the_servers_message(page, server) -> None:
    page.set_input_files("#files", [str(server["paths"][0]), str(server["text"])])
    alert = page.get_by_role("alert")
    alert.wait_for(timeout=30_000)
    assert "notes.txt: not an image" in alert.inner_text()
    assert page.locator("article.result").count() == 0


def test_keyboard_and_labels(page) -> None:
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "files"  # the file input is the first stop
    # the drop zone outline follows keyboard focus
    assert page.locator("#dropzone:focus-within").count() == 1
    assert page.get_by_label("Drop images here").get_attribute("type") == "file"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "deep"
    assert page.locator("#status[role=status][aria-live=polite]").count() == 1
    assert page.locator("html[lang=en]").count() == 1
