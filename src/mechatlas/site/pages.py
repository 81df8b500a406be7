"""The generated pages of the survey site, made from ``literature/`` and ``data/results/``.

Every page is a pure function of the literature ``Library`` and the result records, returning Markdown;
``write_site_pages`` is the one function that reads files and writes ``reports/generated/``. Pages:

- ``generated/survey.md``: the taxonomy as a navigable tree;
- ``generated/methods/<id>.md``: a method's summary, its place in the tree, papers and results using it;
- ``generated/papers/<key>.md``: the formatted citation (pybtex), BibTeX to copy, links, methods, and each
  claim with our verdict and a link to the evidence;
- ``generated/results/<experiment>/<model>/index.md``: figures, tables with CIs and controls, claims
  addressed, and full provenance (commit, params hash, model and revision, the dvc.lock hash of the
  inputs, the command); the record itself is published next to it as ``metrics.json``;
- ``generated/results/organism/index.md``: the organism's held-out behaviour;
- ``generated/replication.md``: every claim with a replication, and its verdict;
- ``generated/clusters/index.md`` and ``generated/clusters/<id>.md``: claims of different papers linked by
  ``supports``/``contradicts``, one table per cluster with our verdicts beside them;
- ``generated/open.md``: claims with ``testable_by`` methods, open for replication or already tested.

All literature- and result-derived text passes through ``md_text`` (see ``mechatlas.site.text``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import yaml

from mechatlas.errors import ArtifactError
from mechatlas.io import atomic_dir
from mechatlas.literature import load_library
from mechatlas.markdown import fence, md_text
from mechatlas.site.build import config_value
from mechatlas.site.build import repo_url as config_repo_url
from mechatlas.site.context import (
    CLUSTERS,
    METHODS,
    NAV_FILE,
    OPEN,
    ORGANISM_PAGE,
    PAPERS,
    REPLICATION,
    RESULTS,
    SURVEY,
    Post,
    Replication,
    Site,
    cluster_page,
    experiment_title,
    header,
    method_page,
    paper_page,
    record_copy,
    result_title,
)
from mechatlas.site.dashboard import replication_page
from mechatlas.site.glossary import GLOSSARY_PAGE, abbreviations, glossary_page
from mechatlas.site.literature_pages import (
    cluster_page_text,
    clusters_index,
    method_page_text,
    methods_index,
    open_page,
    paper_page_text,
    papers_index,
    survey_page,
)
from mechatlas.site.records import Result, read_results
from mechatlas.site.result_pages import provenance_section, result_page_text, results_index
from mechatlas.site.sources import SOURCES, front_matter, render_sources
from mechatlas.site.text import prose
from mechatlas.site.validation import VALIDATION_PAGE, read_planted, validation_page

ORGANISM = "organism"  # the organism's behaviour record, listed in the registry like an experiment
CONTRIBUTING = "generated/contributing.md"
LIBRARY_BIB = "generated/references.bib"  # the whole library as BibTeX, for download
FEED = "generated/feed.xml"  # the blog's RSS feed (made here, so that both builders publish it)

__all__ = [
    "Replication",
    "Result",
    "Site",
    "experiment_title",
    "provenance_section",
    "result_title",
    "site_pages",
    "write_site_pages",
]


# --- All pages, and writing them -------------------------------------------------------------------


def site_pages(site: Site) -> dict[str, str]:
    """Every generated page by docs-relative path (plus the result records they publish, and the nav)."""
    for node_id in site.library.taxonomy.nodes:
        if node_id == "index":
            raise ArtifactError("taxonomy node id `index` would overwrite the methods index; rename the node")
    pages = {
        SURVEY: survey_page(site),
        METHODS: methods_index(site),
        PAPERS: papers_index(site),
        RESULTS: results_index(site),
        REPLICATION: replication_page(site),
        CLUSTERS: clusters_index(site),
        OPEN: open_page(site),
    }
    clusters = site.library.clusters()
    for cluster in clusters:
        if cluster.id == "index":
            raise ArtifactError(
                "cluster id `index` would overwrite the clusters index; rename it in clusters.yaml"
            )
        pages[cluster_page(cluster.id)] = cluster_page_text(site, cluster)
    method_pages = [method_page(node.id) for node, _ in site.tree()]
    for node, _ in site.tree():
        pages[method_page(node.id)] = method_page_text(site, node.id)
    paper_keys = sorted(site.library.papers, key=lambda k: site.labels[k].lower())
    for key in paper_keys:
        pages[paper_page(key)] = paper_page_text(site, key)
    for result in site.results:
        pages[result.page] = result_page_text(site, result)
        pages[record_copy(result)] = result.raw
    if site.planted:
        pages[VALIDATION_PAGE] = validation_page(site.planted, site.results)
    if ORGANISM_PAGE not in pages:  # linked from the home page, so it exists even before a run
        pages[ORGANISM_PAGE] = "\n".join(
            [
                *header(experiment_title(ORGANISM)),
                md_text(prose("organism-intro")),
                "",
                prose("organism-missing"),
                "",
            ]
        )
    pages[GLOSSARY_PAGE] = glossary_page(header("Glossary"))
    pages[FEED] = feed_xml(site)
    pages[LIBRARY_BIB] = site.library.bibliography.path.read_text(encoding="utf-8")
    if site.contributing is not None:
        pages[CONTRIBUTING] = "\n".join([*header("Contributing"), _demote(site.contributing), ""])
    for path in list(pages):
        if path.endswith(".md"):
            pages[path] = pages[path].rstrip("\n") + "\n" + page_footer(site, path, generated=True)
    nav = {
        METHODS: method_pages,
        PAPERS: [paper_page(k) for k in paper_keys],
        CLUSTERS: [cluster_page(c.id) for c in clusters],
        RESULTS: [
            ORGANISM_PAGE,
            *([VALIDATION_PAGE] if site.planted else []),
            *(r.page for r in site.results if r.page != ORGANISM_PAGE),
        ],
    }
    pages[NAV_FILE] = json.dumps(nav, indent=2) + "\n"
    return pages


def read_posts(posts_dir: Path) -> list[Post]:
    """The blog's posts (docs-relative path, first heading, text), so generated pages can link to them."""
    posts = []
    for path in sorted(posts_dir.glob("*.md")) if posts_dir.is_dir() else []:
        text = path.read_text(encoding="utf-8")
        title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
        page = f"blog/posts/{path.name}"
        posts.append(Post(page, title, text))
    return posts


def page_footer(site: Site, page: str, *, generated: bool) -> str:
    """What every page ends with: links to its sources in the repository, and the glossary's definitions."""
    links = []
    if site.repo_url:
        for source in _sources_of(site, page) if generated else [f"{SOURCES}/{page}"]:
            links.append(f"[{md_text(source)}]({site.repo_url}/blob/{site.branch}/{source})")
        if not generated:
            links.insert(0, f"[Edit this page]({site.repo_url}/edit/{site.branch}/{SOURCES}/{page})")
    line = ("\n" + "Source: " + " · ".join(links) + "\n") if links else ""
    post = next((p for p in site.posts if p.page == page), None) if not generated else None
    return (post_citation(site, post) if post else "") + line + abbreviations()


def post_date(post: Post) -> str:
    """The post's ``date`` from its front matter, as ``YYYY-MM-DD`` ("" if it has none)."""
    head, _, _ = front_matter(post.text)
    meta = yaml.safe_load(head.strip().strip("-")) if head else {}
    value = (meta or {}).get("date", "") if isinstance(meta, dict) else ""
    return str(value)[:10]


def post_url(post: Post) -> str:
    """Where the blog plugin publishes a post (``post_url_format: "{date}/{slug}"`` in mkdocs.yml), from the
    site root; the slug is made as the plugin makes it, from the title."""
    from markdown.extensions.toc import slugify

    date = post_date(post).replace("-", "/")
    return f"blog/{date}/{slugify(post.title, '-')}/"


def feed_xml(site: Site, posts: list[Post] | None = None) -> str:
    """The blog as RSS 2.0: each post's title, date, first paragraph and address (relative to the site
    root unless mkdocs.yml sets ``site_url``)."""
    from email.utils import format_datetime
    from xml.sax.saxutils import escape

    import markdown

    base = (site.site_url or "/").rstrip("/") + "/"
    items = []
    for post in sorted(site.posts if posts is None else posts, key=post_date, reverse=True):
        date = post_date(post)
        try:
            when = format_datetime(dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC))
        except ValueError:
            when = ""
        _, body, _ = front_matter(post.text)
        paragraphs = [p for p in body.split("\n\n") if p.strip() and not p.lstrip().startswith("#")]
        summary = markdown.markdown(paragraphs[0]) if paragraphs else ""
        summary = re.sub(r"</?a\b[^>]*>", "", summary)  # page-relative links do not resolve in a reader
        link = base + post_url(post)
        items.append(
            "    <item>\n"
            f"      <title>{escape(post.title)}</title>\n"
            f"      <link>{escape(link)}</link>\n"
            f'      <guid isPermaLink="false">{escape(post.page)}</guid>\n'
            + (f"      <pubDate>{when}</pubDate>\n" if when else "")
            + f"      <description>{escape(summary)}</description>\n"
            "    </item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0">\n  <channel>\n'
        "    <title>mechatlas blog</title>\n"
        f"    <link>{escape(base + 'blog/')}</link>\n"
        "    <description>The mechatlas blog series: what we replicated, on which model.</description>\n"
        + "\n".join(items)
        + "\n  </channel>\n</rss>\n"
    )


def post_citation(site: Site, post: Post) -> str:
    """A "Cite this post" section: BibTeX for the post, with its date and the repository."""
    date = post_date(post)
    year = date[:4] if date[:4].isdigit() else "n.d."
    key = "mechatlas-" + Path(post.page).stem
    title = post.title.replace("{", "").replace("}", "")
    entry = (
        f"@misc{{{key},\n"
        f"  title = {{{title}}},\n"
        "  author = {{mechatlas contributors}},\n"
        f"  year = {{{year}}},\n"
        f"  note = {{mechatlas blog, {date}}}"
        + (
            f",\n  url = {{{site.repo_url}/blob/{site.branch}/{SOURCES}/{post.page}}}"
            if site.repo_url
            else ""
        )
        + "\n}"
    )
    return "\n## Cite this post\n\n" + fence(entry, "bibtex") + "\n"


def _sources_of(site: Site, page: str) -> list[str]:
    """The repository files a generated page is made from (the data behind it is DVC's, not git's)."""
    if page.startswith("generated/papers/") and not page.endswith("index.md"):
        return [f"literature/papers/{Path(page).stem}.yaml", "literature/references.bib"]
    if page.startswith("generated/methods/") or page == SURVEY:
        return ["literature/taxonomy.yaml"]
    if page.startswith("generated/results/"):
        parts = Path(page).parts
        if len(parts) > 3 and parts[2] not in ("index.md", ORGANISM):
            return [f"src/mechatlas/experiments/{parts[2]}", "src/mechatlas/experiments/registry.py"]
        return ["src/mechatlas/organism"]
    if page == CONTRIBUTING:
        return ["CONTRIBUTING.md"]
    return ["src/mechatlas/site"]


def _demote(markdown: str) -> str:
    """CONTRIBUTING.md under the generated page's own heading: its headings one level down, its links to
    repository files made absolute where they would not resolve on the site."""
    out = []
    fence = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("#"):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


def write_site_pages(
    *,
    literature: Path,
    results_root: Path,
    docs_dir: Path,
    figures_root: Path | None = None,
    dvc_lock: Path | None = None,
    project_root: Path | None = None,
    sources_dir: Path | None = None,
    repo_url: str | None = None,
) -> list[str]:
    """Read the literature and the results, and (re)write ``<docs_dir>/generated/`` in one swap.

    Returns the docs-relative paths written. Raises ``LiteratureError`` for a library that fails the check
    and ``ArtifactError`` for a result record that cannot be shown faithfully.
    """
    root = project_root or Path.cwd()
    library = load_library(literature)
    results = read_results(
        results_root,
        project_root=root,
        docs_dir=docs_dir,
        figures_root=figures_root or docs_dir / "figures",
        dvc_lock=dvc_lock,
    )
    sources = sources_dir if sources_dir is not None else root / SOURCES
    contributing_file = root / "CONTRIBUTING.md"
    site = Site(
        library,
        results,
        read_posts(sources / "blog" / "posts"),
        repo_url=(repo_url or config_repo_url(root / "mkdocs.yml") or "").rstrip("/") or None,
        site_url=config_value(root / "mkdocs.yml", "site_url"),
        contributing=contributing_file.read_text(encoding="utf-8") if contributing_file.is_file() else None,
        planted=read_planted(results_root, root),
    )
    pages = site_pages(site)
    # The hand-written pages first: an unknown citation key fails here, before anything is swapped in.
    footers = (
        {
            page: page_footer(site, page, generated=False)
            for page in (p.relative_to(sources).as_posix() for p in sources.rglob("*.md"))
        }
        if sources.is_dir()
        else {}
    )
    written = render_sources(
        sources,
        docs_dir,
        library=library,
        results_root=results_root,
        project_root=root,
        footers=footers,
        repo_url=site.repo_url,
    )
    # The feed quotes each post's opening as readers see it: from the rendered copy, macros expanded.
    pages[FEED] = feed_xml(site, read_posts(docs_dir / "blog" / "posts"))
    with atomic_dir(docs_dir / "generated") as tmp:
        for path, text in pages.items():
            target = tmp / Path(path).relative_to("generated")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    return sorted([*pages, *written])
