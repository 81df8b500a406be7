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
import time
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


# --- The real site, when the study's records are here: findings first, readable numbers and figures ----

REAL_RECORDS = {
    "refusal_direction": REPO / "data/results/refusal_direction/organism/metrics.json",
    "dimensionality": REPO / "data/results/dimensionality/organism/metrics.json",
    "organism": REPO / "data/results/organism/behaviour.json",
}
REAL_PAGES = {
    "home": "",
    "dashboard": "generated/replication/",
    "refusal-direction": "generated/results/refusal_direction/organism/",
    "dimensionality": "generated/results/dimensionality/organism/",
    "organism": "generated/results/organism/",
    "blog-post": "blog/2026/11/22/is-refusal-one-direction-a-first-replication-on-our-model-organism/",
}
RESULT_PAGES = {
    "refusal_direction": REAL_PAGES["refusal-direction"],
    "dimensionality": REAL_PAGES["dimensionality"],
    "organism": REAL_PAGES["organism"],
}
PHONE = 420


@pytest.fixture(scope="module")
def real_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the study's sources and records with the site's pages generated, ready to build."""
    if not all(path.exists() for path in REAL_RECORDS.values()):
        pytest.skip("no study results yet: run `make run` to build the real site")
    root = tmp_path_factory.mktemp("real-site")
    rendered = shutil.ignore_patterns("generated", "bench", "blog", "index.md", "tags.md")  # made from pages/
    for part in ("literature", "data/results", "reports", "pages"):
        shutil.copytree(REPO / part, root / part, ignore=rendered if part == "reports" else None)
    for part in ("mkdocs.yml", "dvc.lock", "CONTRIBUTING.md"):
        if (REPO / part).exists():
            shutil.copy(REPO / part, root / part)
    write_site_pages(
        literature=root / "literature",
        results_root=root / "data/results",
        docs_dir=root / "reports",
        dvc_lock=root / "dvc.lock",
        project_root=root,
    )
    return root


def _serve(site_dir: Path) -> Iterator[str]:
    server = make_server(site_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def real_url(real_project: Path) -> Iterator[str]:
    """The real site built with MkDocs Material, served locally."""
    yield from _serve(build_site(real_project / "mkdocs.yml", real_project / "site"))


@pytest.fixture(scope="module")
def real_zensical_url(real_project: Path) -> Iterator[str]:
    """The real site built with Zensical, served locally."""
    from mechatlas.site.build import zensical_executable

    if zensical_executable() is None:
        pytest.skip("zensical is not installed: `pip install -c constraints.txt -e '.[dev]'`")
    site = build_site(real_project / "mkdocs.yml", real_project / "site-zensical", builder="zensical")
    yield from _serve(site)


def open_page(browser: Any, url: str) -> None:
    """Load a page and wait until its article is there and every image has settled."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 20).until(
        lambda b: b.execute_script(
            "return document.readyState === 'complete' && !!document.querySelector('article h1')"
            " && Array.from(document.images).every(i => i.complete)"
        )
    )


def _numbers(sentence: str) -> list[str]:
    import re

    return re.findall(r"\d[\d,]*(?:\.\d+)?%?", sentence)


def test_every_result_page_opens_with_its_headline_numbers(browser: Any, real_url: str) -> None:
    import json

    from mechatlas.site.tables import findings

    for experiment, path in RESULT_PAGES.items():
        metrics = json.loads(REAL_RECORDS[experiment].read_text())["metrics"]
        expected = findings(experiment, metrics)
        assert expected, f"{experiment}: no findings made from its record"
        open_page(browser, real_url + path)
        opening = browser.execute_script(
            "const p = document.querySelector('article h1 ~ p'); return p ? p.textContent : ''"
        )
        assert opening.startswith("What we found"), (path, opening[:120])
        for number in _numbers(expected[0]) + _numbers(expected[-1]):
            assert number in opening, f"{path}: the opening paragraph lacks {number}: {opening[:300]}"


def test_no_table_cell_shows_more_than_six_significant_digits(browser: Any, real_url: str) -> None:
    from mechatlas.site.compare import DECIMAL, significant_digits

    for name, path in REAL_PAGES.items():
        open_page(browser, real_url + path)
        cells = browser.execute_script(
            "return Array.from(document.querySelectorAll('article td, article th'), c => {"
            "  const copy = c.cloneNode(true); copy.querySelectorAll('code').forEach(e => e.remove());"
            "  return copy.textContent; })"
        )
        assert cells or name in ("home", "blog-post"), name
        wordy = [c for c in cells if any(significant_digits(n) > 6 for n in DECIMAL.findall(c))]
        assert wordy == [], f"{name}: {wordy[:3]}"


CLAIMS_CELLS = (
    "let e = document.getElementById('claims-addressed');"
    "while (e && e.tagName !== 'TABLE' && !e.querySelector('table')) e = e.nextElementSibling;"
    "const t = e && (e.tagName === 'TABLE' ? e : e.querySelector('table'));"
    "return t ? Array.from(t.querySelectorAll('td'), c => c.textContent) : [];"
)


def test_claim_tables_show_the_records_sentences_without_code_names_or_e_notation(
    browser: Any, real_url: str
) -> None:
    import re

    for experiment in ("refusal_direction", "dimensionality"):
        open_page(browser, real_url + RESULT_PAGES[experiment])
        cells = browser.execute_script(CLAIMS_CELLS)
        assert cells, experiment
        machine = [c for c in cells if re.search(r"\b[a-z][a-z0-9]*_[a-z0-9]|\d[eE][+-]?\d|\[judge ", c)]
        assert machine == [], f"{experiment}: {machine[:2]}"


def test_every_figure_loads_and_has_a_numbered_caption(browser: Any, real_url: str) -> None:
    for experiment, path in [(e, RESULT_PAGES[e]) for e in ("refusal_direction", "dimensionality")] + [
        ("blog post", REAL_PAGES["blog-post"])
    ]:
        open_page(browser, real_url + path)
        figures = browser.execute_script(
            "return Array.from(document.querySelectorAll('article figure'), f => {"
            "  const i = f.querySelector('img'); const c = f.querySelector('figcaption');"
            "  return [i && i.complete && i.naturalWidth > 0, c ? c.textContent : '',"
            "          !!f.querySelector('a[href]')]; })"
        )
        assert figures, experiment
        for number, (loaded, caption, zoom) in enumerate(figures, start=1):
            assert loaded, f"{experiment}: figure {number} did not load"
            assert caption.startswith(f"Figure {number}.") and len(caption) > 30, caption
            assert zoom, f"{experiment}: figure {number} has no link to its full size"


def test_dashboard_and_a_result_page_are_usable_at_phone_width(browser: Any, real_url: str) -> None:
    browser.set_window_size(PHONE, 900)
    try:
        for name in ("dashboard", "refusal-direction"):
            open_page(browser, real_url + REAL_PAGES[name])
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{name}: the page scrolls sideways by {overflow}px at {PHONE}px"
            tables = browser.execute_script(
                "return Array.from(document.querySelectorAll('article table'), t => {"
                "  const box = t.parentElement; const r = box.getBoundingClientRect();"
                "  return [r.right <= window.innerWidth + 1, getComputedStyle(box).overflowX]; })"
            )
            assert tables, name
            assert all(inside and scroll in ("auto", "scroll") for inside, scroll in tables), (name, tables)
        open_page(browser, real_url + REAL_PAGES["dashboard"])
        box = browser.find_element("css selector", "[data-filter-tables] input")
        assert box.is_displayed() and box.size["width"] <= PHONE
        box.send_keys("not replicated")
        visible = browser.execute_script(
            "return Array.from(document.querySelectorAll('article table tbody tr')).filter(r => !r.hidden)"
            ".map(r => r.textContent)"
        )
        assert visible and all("not replicated" in row for row in visible)
    finally:
        browser.set_window_size(1280, 1000)


def test_sentences_in_tables_keep_a_readable_width_at_phone_width(browser: Any, real_url: str) -> None:
    browser.set_window_size(PHONE, 900)
    try:
        for name in ("dashboard", "refusal-direction", "dimensionality"):
            open_page(browser, real_url + REAL_PAGES[name])
            widths = browser.execute_script(
                "return Array.from(document.querySelectorAll('article table:not(.heatmap) td'))"
                ".filter(c => c.textContent.trim().length > 60).map(c => c.getBoundingClientRect().width)"
            )
            assert widths, name
            # 150 px is about 20 characters a line at the tables' font size; squeezed, they got 60-100
            assert min(widths) >= 150, f"{name}: a sentence squeezed into {min(widths):.0f} px at {PHONE} px"
    finally:
        browser.set_window_size(1280, 1000)


def test_dashboard_columns_sort(browser: Any, real_url: str) -> None:
    open_page(browser, real_url + REAL_PAGES["dashboard"])
    header = browser.find_element("css selector", "article table thead th:nth-child(3)")
    header.click()
    first = browser.execute_script(
        "return Array.from(document.querySelector('article table').tBodies[0].rows, r => r.cells[2].textContent)"
    )
    assert first == sorted(first, key=str.lower) and header.get_attribute("data-order") == "ascending"


def test_screenshots_of_the_real_site_desktop_and_phone_are_saved(browser: Any, real_url: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        for width, label in ((1280, "desktop"), (PHONE, "phone")):
            for name, path in REAL_PAGES.items():
                browser.set_window_size(width, 1000)
                open_page(browser, real_url + path)
                height = browser.execute_script("return document.body.scrollHeight")
                browser.set_window_size(width, max(800, min(int(height), 6000)))
                target = SCREENSHOTS / f"real-{name}-{label}.png"
                assert browser.save_screenshot(str(target)), target
                assert target.stat().st_size > 10_000
    finally:
        browser.set_window_size(1280, 1000)


# A reader who searches for the method's name finds its method page and our result among the first
# results, with either builder, above the ~130 papers tagged `refusal`.
SEARCHED = ("generated/methods/refusal-direction/", "generated/results/refusal_direction/organism/")
FIRST_RESULTS = 10  # one screen: Material shows ten pages before the list is scrolled, Zensical ten entries


def _page_of(href: str, base: str) -> str:
    return urlsplit(href).path.removeprefix(urlsplit(base).path)


def _material_search(browser: Any, url: str, query: str) -> list[str]:
    """The pages Material lists for ``query``, best first (one entry per page, sections folded in)."""
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, url)
    browser.execute_script("document.querySelector('label.md-search__icon, label[for=__search]').click()")
    box = WebDriverWait(browser, 10).until(lambda b: b.find_element("css selector", "input.md-search__input"))
    box.send_keys(query)
    WebDriverWait(browser, 20).until(lambda b: b.find_elements("css selector", ".md-search-result__link"))
    hrefs = browser.execute_script(
        "return Array.from(document.querySelectorAll('.md-search-result__item > .md-search-result__link'),"
        " a => a.href)"
    )
    return [_page_of(href, url) for href in hrefs]


ZENSICAL_OPTIONS = (
    "const host = Array.from(document.querySelectorAll('*')).find("
    "  e => e.shadowRoot && e.shadowRoot.querySelector('[role=listbox]'));"
    "return host ? Array.from(host.shadowRoot.querySelectorAll('[role=listbox] a[role=option]'), a => a.href)"
    " : [];"
)


def _zensical_search(browser: Any, url: str, query: str) -> list[str]:
    """The pages Zensical lists for ``query``, best first (its entries are pages and sections)."""
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, url)
    browser.find_element("css selector", ".md-search__button").click()
    box = WebDriverWait(browser, 10).until(
        lambda b: b.execute_script(
            "const host = Array.from(document.querySelectorAll('*')).find("
            "  e => e.shadowRoot && e.shadowRoot.querySelector('input[role=combobox]'));"
            "return host && host.shadowRoot.querySelector('input[role=combobox]');"
        )
    )
    box.send_keys(query)
    WebDriverWait(browser, 20).until(lambda b: b.execute_script(ZENSICAL_OPTIONS))
    time.sleep(0.5)  # the list is redrawn as the query is typed; read the settled one
    hrefs = browser.execute_script(ZENSICAL_OPTIONS)[:FIRST_RESULTS]
    return list(dict.fromkeys(_page_of(href, url) for href in hrefs))


@pytest.mark.parametrize("builder", ["mkdocs", "zensical"])
def test_search_for_refusal_direction_lists_its_method_and_result_pages_first(
    browser: Any, builder: str, request: pytest.FixtureRequest
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if builder == "mkdocs":
        url = request.getfixturevalue("real_url")
        pages = _material_search(browser, url, "refusal direction")[:FIRST_RESULTS]
    else:
        url = request.getfixturevalue("real_zensical_url")
        pages = _zensical_search(browser, url, "refusal direction")
    assert browser.save_screenshot(str(SCREENSHOTS / f"real-search-{builder}.png"))
    missing = [page for page in SEARCHED if page not in pages]
    assert missing == [], f"{builder}: the first {FIRST_RESULTS} search results lack {missing}: {pages}"
