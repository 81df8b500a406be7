"""The fixture site in headless Chromium: every page loads, no internal link is broken, citations render,
contributed ``<script>`` stays inert, nothing is fetched from another origin; screenshots are kept.

The fixture project (``site_fixture``) is built with ``mkdocs build --strict`` into a temporary folder and
served on a free local port. Screenshots of the home, a method, a paper, a result and the post are saved
to ``test-artifacts/screenshots/``. Without Chromium and chromedriver the tests are skipped, saying how to
install them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

import pytest

from mechatlas.site.build import build_site, make_server
from mechatlas.site.pages import write_site_pages
from site_fixture import build_fixture_project

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
PAGES = {
    "home": "",
    "method": "generated/methods/child-method/",
    "paper": "generated/papers/evil2025script/",
    "result": "generated/results/toy_experiment/tiny/",
    "post": "blog/2026/01/15/a-fixture-post-about-alpha/",
}
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--window-size=1280,1000",
]


def chromium() -> tuple[str, str] | None:
    browser = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    project = build_fixture_project(tmp_path_factory.mktemp("browser-site"))
    write_site_pages(
        literature=project / "literature",
        results_root=project / "data/results",
        docs_dir=project / "reports",
        dvc_lock=project / "dvc.lock",
        project_root=project,
    )
    site_dir = build_site(project / "mkdocs.yml", project / "site")
    server = make_server(site_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    found = chromium()
    if found is None:
        pytest.skip(
            "Chromium and chromedriver are not installed, so the browser tests cannot run; install them "
            "with `apt-get install chromium chromium-driver` (CI's .ci/run does)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    profile = tempfile.mkdtemp(prefix="mechatlas-chromium-")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=found[1]))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def is_page(url: str) -> bool:
    path = urlsplit(url).path
    return path.endswith("/") or path.endswith(".html")


def test_every_page_loads_and_no_internal_link_is_broken(browser: Any, base_url: str) -> None:
    pending, seen, ids = [base_url], {base_url}, {}
    broken: list[str] = []
    anchors: list[tuple[str, str, str]] = []  # (from page, target page, fragment)
    other: set[str] = set()
    while pending:
        url = pending.pop()
        browser.get(url)
        assert browser.execute_script("return typeof window.__pwned") == "undefined", url
        assert "404" not in browser.title, f"{url} is the not-found page"
        ids[url] = set(
            browser.execute_script("return Array.from(document.querySelectorAll('[id]'), e => e.id)")
        )
        images = browser.execute_script(
            "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
        )
        broken += [f"{url}: image {src} did not load" for src in images]
        foreign = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(arguments[0]))",
            base_url,
        )
        broken += [f"{url}: fetched {name} from another origin" for name in foreign]
        for href in browser.execute_script(
            "return Array.from(document.querySelectorAll('a[href]'), a => a.href)"
        ):
            target, fragment = urldefrag(href)
            if not target.startswith(base_url):
                continue  # DOI and arXiv links: not fetched, the tests run offline
            if fragment:
                anchors.append((url, target, fragment))
            if is_page(target):
                if target not in seen:
                    seen.add(target)
                    pending.append(target)
            else:
                other.add(target)
    broken += [
        f"{target} (a file linked from the site) answers {code}"
        for target in other
        if (code := status(target)) != 200
    ]
    for page, target, fragment in anchors:
        if target in ids and fragment not in ids[target]:
            broken.append(f"{page}: link to {target}#{fragment}, which has no such anchor")
    assert not broken, "\n".join(broken)
    assert len(seen) >= 15, sorted(seen)
    assert {base_url + path for path in PAGES.values()} <= seen


def test_citations_render_as_author_year_links_with_a_reference_list(browser: Any, base_url: str) -> None:
    browser.get(base_url + PAGES["post"])
    citations = browser.execute_script(
        "return Array.from(document.querySelectorAll('span.citation'), s => s.textContent.trim())"
    )
    assert citations == [
        "(Alpha, 2024)",
        "(see Beta and Gamma, 2023, p. 3)",
        "(Alpha, 2024; Evil et al., 2025)",
    ]
    references = browser.execute_script(
        "const h = document.getElementById('references'); return h.nextElementSibling.innerText"
    )
    assert "Ann Alpha. First paper about alpha. arXiv preprint, 2024. arXiv:2401.00001." in references
    assert "10%" in browser.find_element("css selector", "article").text  # the metric macro's value
    browser.find_element("link text", "Alpha, 2024").click()
    assert browser.title.startswith("First Paper About Alpha")


def test_contributed_script_stays_inert_and_shows_as_text(browser: Any, base_url: str) -> None:
    browser.get(base_url + PAGES["paper"])
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert browser.title.startswith("Scripts </title><script>window.__pwned=5</script> in Titles")
    text = browser.find_element("css selector", "article").text
    assert "<script>window.__pwned=1</script> and [click me](javascript:window.__pwned=3)" in text
    assert '<img src=x onerror="window.__pwned=2">' in text
    inline = browser.execute_script(
        "return Array.from(document.scripts).filter(s => s.textContent.includes('pwned')).length"
    )
    assert inline == 0
    links = browser.execute_script("return Array.from(document.querySelectorAll('a[href]'), a => a.href)")
    assert not [link for link in links if link.lower().startswith("javascript")]


def test_screenshots_of_the_main_kinds_of_page_are_saved(browser: Any, base_url: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in PAGES.items():
        browser.get(base_url + path)
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1280, max(800, min(int(height), 4000)))
        target = SCREENSHOTS / f"{name}.png"
        assert browser.save_screenshot(str(target)), target
        assert target.stat().st_size > 10_000
    browser.set_window_size(1280, 1000)
