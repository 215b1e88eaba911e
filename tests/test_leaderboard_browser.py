"""The leaderboard page in a real headless Chromium, driven over the DevTools protocol.

It renders (our script runs under the page's Content-Security-Policy), sorting and tabs
work, a method named ``<script>alert(1)</script>`` shows as text and runs nothing, and the
page requests nothing but itself.
"""

from __future__ import annotations

import json

import pytest

from .cdp import CHROMIUM, Browser
from .test_leaderboard_render import EVIL, EVIL_NOTES, build_board

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

CATCH_ALERTS = "window.__alerts = []; window.alert = function (m) { window.__alerts.push(String(m)); };"
ROWS = "Array.from(document.querySelectorAll('#panel-birds tbody tr')).map(r => r.dataset.slug)"
METHODS = "Array.from(document.querySelectorAll('#panel-birds tbody .method')).map(m => m.textContent)"


def click(browser: Browser, selector: str) -> None:
    browser.js(f"document.querySelector({json.dumps(selector)}).click()")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("browser")
    board = build_board(tmp)
    browser = Browser(tmp / "profile")
    try:
        for domain in ("Page", "Runtime", "Network", "Log"):
            browser.page(f"{domain}.enable")
        browser.page("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_ALERTS})
        browser.page("Page.navigate", {"url": (board / "index.html").as_uri()})
        browser.wait_for("Page.loadEventFired")
        yield browser, board
    finally:
        browser.close()


def test_page_renders_with_its_script_running(page):
    browser, _ = page
    assert browser.js("document.title") == "ytfgvc leaderboard"
    tabs = browser.js("Array.from(document.querySelectorAll('nav.tabs button')).map(b => b.textContent)")
    assert tabs == ["YouTube-Birds (6)", "YouTube-Cars (4)"]
    # Only our script can hide the second tab: proof that it ran under the page's CSP.
    assert browser.js(
        "[document.getElementById('panel-birds').hidden, document.getElementById('panel-cars').hidden]"
    ) == [
        False,
        True,
    ]
    assert browser.js("document.querySelectorAll('#panel-birds svg rect').length") == 6
    assert browser.js("document.querySelectorAll('#panel-birds svg line.ci').length") == 6  # 2 entries x (bar + 2 caps)
    coverage = browser.js(
        "document.querySelector('tr[data-slug=\"script-alert-1-script\"] td:nth-child(6)').textContent"
    )
    assert coverage == "75.0%15 / 20"
    core = "document.querySelector('tr[data-slug=\"script-alert-1-script\"] td:nth-child(8)').textContent"
    assert browser.js(core) == "46.67on 15"  # the common core: the 15 videos both entries cover


def test_a_script_in_a_method_name_shows_as_text(page):
    browser, _ = page
    row = "document.querySelector('tr[data-slug=\"script-alert-1-script\"]')"
    assert browser.js(f"{row}.querySelector('.method').textContent") == EVIL
    assert browser.js(f"{row}.querySelector('.notes').textContent") == EVIL_NOTES
    assert browser.js(f"{row}.querySelector('td:nth-child(9)').textContent") == EVIL  # the backbone
    assert browser.js("document.scripts.length") == 2 and browser.js("document.images.length") == 0
    assert browser.js("window.__alerts") == []
    assert not [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]


def test_columns_sort_on_click(page):
    browser, _ = page
    assert browser.js(METHODS) == ["Honest net", "RRA", "TSN", "BN-Inception", EVIL, "I3D (ResNet-50)"]
    cells = "document.querySelectorAll('#panel-birds tbody tr td:nth-child(3)')"
    tops = browser.js(f"Array.from({cells}).map(t => parseFloat(t.textContent))")
    assert tops == sorted(tops, reverse=True)
    click(browser, "#panel-birds th[data-key=method] button")
    ascending = ["<script>alert(1)</script>", "BN-Inception", "Honest net", "I3D (ResNet-50)", "RRA", "TSN"]
    assert browser.js(METHODS) == ascending
    assert (
        browser.js("document.querySelector('#panel-birds th[data-key=method]').getAttribute('aria-sort')")
        == "ascending"
    )
    click(browser, "#panel-birds th[data-key=method] button")
    assert browser.js(METHODS) == ascending[::-1]
    click(browser, "#panel-birds th[data-key=coverage] button")  # numbers sort high first; paper rows have none
    assert browser.js(ROWS)[:2] == ["honest-net", "script-alert-1-script"]
    assert all(slug.startswith("paper-") for slug in browser.js(ROWS)[2:])
    click(browser, "#panel-birds th[data-key=top1] button")
    assert browser.js(METHODS)[0] == "Honest net" and browser.js(ROWS)[-1] == "paper-i3d-resnet-50"


def test_tabs_switch_datasets(page):
    browser, _ = page
    click(browser, "#tab-cars")
    assert browser.js(
        "[document.getElementById('panel-birds').hidden, document.getElementById('panel-cars').hidden]"
    ) == [
        True,
        False,
    ]
    assert browser.js("location.hash") == "#cars"
    assert browser.js("document.getElementById('tab-cars').getAttribute('aria-selected')") == "true"


def test_page_requests_nothing_but_itself_and_logs_no_error(page):
    browser, board = page
    browser.js("1")  # let pending events arrive
    requests = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    assert requests and all(url == (board / "index.html").as_uri() for url in requests), requests
    errors = [
        e["params"]
        for e in browser.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert errors == []
