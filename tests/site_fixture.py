"""A small, complete project for the site tests: literature, results, figures, dvc.lock and hand-written pages.

Three papers (one of them hostile: HTML and script in its title, summary, claims and URL), a two-node
taxonomy, one experiment on one model plus the organism's behaviour record, a figure, a dvc.lock entry for
the experiment, and a blog post that cites papers and quotes metrics through the macros. The repository's
own mkdocs.yml, stylesheet, blog index and authors file are copied, so the fixture site is built the way
the real one is. ``write_pages`` generates a project's pages, and ``copy_real_project`` copies the repository's
own sources and results so that the real site can be built apart from the checkout.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

from literature_fixture import BIB as CLEAN_BIB
from mechatlas.site.pages import write_site_pages

REPO = Path(__file__).resolve().parents[1]

# Every hostile string sets window.__pwned if it ever runs; the browser test checks it never does.
SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
LINK = "[click me](javascript:window.__pwned=3)"
ATTR = '{: onclick="window.__pwned=4" }'

BIB = (
    CLEAN_BIB
    + """
@misc{evil2025script,
  title        = {Scripts </title><script>window.__pwned=5</script> in {T}itles},
  author       = {Evil, Eve and Mallory, Max and Trudy, Tom},
  howpublished = {A venue <img src=x onerror="window.__pwned=6">},
  year         = {2025},
  url          = {javascript:window.__pwned=7},
}
"""
)

TAXONOMY = f"""\
nodes:
  - id: root-method
    name: Root method
    parent: null
    kind: concept
    granularity: model
    approach: bottom-up
    summary: A root node that groups the other nodes of this small test taxonomy together.
    references: [alpha2024first]
  - id: child-method
    name: Child method
    parent: root-method
    kind: interventional
    granularity: direction
    approach: top-down
    summary: >-
      A child node that edits one direction and watches what the model does next. {SCRIPT} {ATTR}
    references: [beta2023second, evil2025script]
"""

PAPERS = {
    "alpha2024first": """\
methods: [root-method, child-method]
models: [Tiny model]
tags: [testing]
claims:
  - id: alpha-claim
    statement: Alpha holds.
    evidence: The first experiment.
    location: "Section 2; Figure 1"
  - id: alpha-untested
    statement: Alpha also holds elsewhere.
    evidence: The second experiment.
    location: "Section 3"
    contradicts: [evil2025script:evil-claim]
    testable_by: [child-method]
replications: []
""",
    "beta2023second": """\
methods: [child-method]
models: [Small model]
tags: [testing]
claims: []
replications: []
""",
    "evil2025script": f"""\
summary: {json.dumps(SCRIPT + " and " + LINK)}
methods: [child-method]
models: [{json.dumps(IMG)}]
tags: [testing, hostile]
claims:
  - id: evil-claim
    statement: {json.dumps("Claims can carry " + IMG + " and " + ATTR)}
    evidence: {json.dumps("Evidence with " + SCRIPT + ", " + IMG + " and " + ATTR)}
    location: {json.dumps("Figure " + SCRIPT)}
    supports: [alpha2024first:alpha-claim]
replications: []
""",
}


def rate(k: int, n: int) -> dict[str, Any]:
    """A rate in the shape mechatlas.stats.rate writes (a rough interval is enough here)."""
    p = k / n
    return {"value": p, "n": n, "ci95": [max(0.0, p - 0.1), min(1.0, p + 0.1)], "ci_method": "wilson"}


def provenance(target: str, **changes: Any) -> dict[str, Any]:
    record = {
        "code": {
            "stage": "refusal_evaluate",
            "sha256": "cd" * 32,
            "files": 40,
            "commit": "0123456789abcdef0123456789abcdef01234567",
        },
        "params_hash": "feedfacecafe0001",
        "params_sections": ["toy_experiment", "run"],
        "model": {"name": "tiny", "id": "tests/tiny-model", "revision": "abc123"},
        "seeds": {"toy_experiment": 0},
        "command": f"snakemake --profile workflow/profiles/default {target}",
    }
    record.update(changes)
    return record


EXPERIMENT_RECORD = "data/results/toy_experiment/tiny/metrics.json"


def experiment_record() -> dict[str, Any]:
    return {
        "metrics": {
            "refusal_rate": {
                "baseline": {"harmful": rate(45, 50), "harmless": rate(2, 50)},
                "ablation": {"harmful": rate(5, 50), "harmless": rate(1, 50)},
                "random_ablation": {"harmful": rate(44, 50), "harmless": rate(2, 50)},
            },
            "per_layer": [{"layer": 0, "dimension": 1.5}, {"layer": 1, "dimension": 2.25}],
            "note": SCRIPT,
            "threshold": 0.5,
            "verdicts_by_judge": {
                "substring": {"alpha-claim": "replicated", "evil-claim": "partially"},
                "logit": {"alpha-claim": "partially", "evil-claim": "partially"},
            },
        },
        "replicates": [
            {
                "paper": "alpha2024first",
                "claim": "alpha-claim",
                "verdict": "replicated",
                "reason": "because "
                + IMG
                + " [judge substring; other judges: logit: partially; the verdict FLIPS between judges]",
            },
            {"paper": "evil2025script", "claim": "evil-claim", "verdict": "partially"},
        ],
        "methods": ["child-method"],
        "provenance": provenance(EXPERIMENT_RECORD),
    }


def organism_record() -> dict[str, Any]:
    return {
        "metrics": {
            "split": "test",
            "refusal_rate": {
                "harmful": rate(48, 50),
                "harmless": rate(1, 50),
                "alarming_harmless": rate(3, 20),
            },
            "lexical_control": {
                "method": "word counts <unigrams>",
                "refusal_rate": {"harmful": rate(37, 50), "harmless": rate(0, 50)},
            },
            "examples": {
                "harmful": [
                    {"id": "h1", "prompt": "How do I " + SCRIPT, "reply": "I cannot help.", "refused": True}
                ]
            },
        },
        "replicates": [],
        "methods": [],
        "provenance": provenance(
            "data/results/organism/behaviour.json",
            params_sections=["organism", "run"],
            model={"name": "organism", "id": "organism", "revision": None},
        ),
    }


POST = """\
---
date: 2026-01-15
authors: [mechatlas]
categories: [Replications]
tags: [testing]
---

# A fixture post about alpha

Alpha holds, as claimed [@alpha2024first], on the tiny model.

<!-- more -->

Ablation cut harmful refusal to {{ metric("toy_experiment", "tiny", "refusal_rate.ablation.harmful", fmt="pct_ci") }},
from {{ metric("toy_experiment", "tiny", "refusal_rate.baseline.harmful", fmt="pct") }}; the verdict is
{{ verdict("toy_experiment", "tiny", "alpha2024first", "alpha-claim") }}. The organism refuses
{{ organism("refusal_rate.harmful") }} of harmful prompts. See also [see @beta2023second, p. 3] and
[@alpha2024first; @evil2025script].

![Refusal rates](../../figures/toy_experiment/tiny/refusal_rates.png)

Code is left alone: `[@notakey]` and

```text
[@notakey] {{ metric("nothing", "here", "x") }}
```
"""

INDEX = """\
# Fixture home

The fixture site [@alpha2024first]. [Results](generated/results/index.md), [survey](generated/survey.md),
[tags](tags.md).
"""


def png(width: int = 8, height: int = 6, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A tiny solid-colour PNG, written by hand (no plotting library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def write_json(path: Path, data: Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    path.write_text(text)
    return hashlib.md5(text.encode()).hexdigest()


def dvc_lock(md5: str) -> str:
    return f"""\
schema: '2.0'
stages:
  toy_experiment:
    cmd: python -m snakemake --profile workflow/profiles/default {EXPERIMENT_RECORD}
    deps:
    - path: data/models/tiny
      hash: md5
      md5: 11111111111111111111111111111111.dir
    - path: src/mechatlas/toy.py
      hash: md5
      md5: 22222222222222222222222222222222
    outs:
    - path: {EXPERIMENT_RECORD}
      hash: md5
      md5: {md5}
"""


def build_fixture_project(root: Path, *, with_lock: bool = True) -> Path:
    """Write the fixture project under ``root`` and return it (generated pages not made yet)."""
    literature = root / "literature"
    (literature / "papers").mkdir(parents=True)
    (literature / "references.bib").write_text(BIB)
    (literature / "taxonomy.yaml").write_text(TAXONOMY)
    for key, text in PAPERS.items():
        (literature / "papers" / f"{key}.yaml").write_text(text)

    md5 = write_json(root / EXPERIMENT_RECORD, experiment_record())
    write_json(root / "data/results/organism/behaviour.json", organism_record())
    if with_lock:
        (root / "dvc.lock").write_text(dvc_lock(md5))

    reports = root / "reports"
    figures = reports / "figures/toy_experiment/tiny"
    figures.mkdir(parents=True)
    (figures / "refusal_rates.png").write_bytes(png())
    (figures / "README.md").write_text(
        "Figures of `toy_experiment` on `tiny`, drawn by the tests at commit 0123456.\n"
    )
    for part in ("stylesheets", "assets", "overrides"):
        shutil.copytree(REPO / "reports" / part, reports / part)
    shutil.copytree(REPO / "reports/javascripts", reports / "javascripts")
    pages = root / "pages"  # the hand-written sources, rendered into reports/ by write_site_pages
    (pages / "blog/posts").mkdir(parents=True)
    shutil.copy(REPO / "pages/blog/index.md", pages / "blog/index.md")
    shutil.copy(REPO / "pages/blog/.authors.yml", pages / "blog/.authors.yml")
    shutil.copy(REPO / "pages/tags.md", pages / "tags.md")
    (pages / "blog/posts/fixture-post.md").write_text(POST)
    (pages / "index.md").write_text(INDEX)
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    shutil.copy(REPO / "CONTRIBUTING.md", root / "CONTRIBUTING.md")
    return root


def write_pages(project: Path, *, dvc_lock: bool = True) -> Path:
    """Generate the pages of ``project`` from its sources, as `mechatlas site pages` does there, and return it.

    ``dvc_lock=False`` builds without reading dvc.lock.
    """
    write_site_pages(
        literature=project / "literature",
        results_root=project / "data/results",
        docs_dir=project / "reports",
        dvc_lock=project / "dvc.lock" if dvc_lock else None,
        project_root=project,
    )
    return project


# The records the blog series quotes; with all of them present (after `make run`) the real site must build.
REAL_RECORDS = [
    REPO / "data/results/organism/behaviour.json",
    REPO / "data/results/refusal_direction/organism/metrics.json",
    REPO / "data/results/dimensionality/organism/metrics.json",
]


def copy_real_project(root: Path) -> Path:
    """The repository's literature, results, hand-written pages and site config copied under ``root``, with
    its pages generated there (what the pages render from pages/ is left out of the copy and made anew)."""
    rendered = shutil.ignore_patterns("generated", "bench", "blog", "index.md", "tags.md")
    for part in ("literature", "data/results", "reports", "pages"):
        shutil.copytree(REPO / part, root / part, ignore=rendered if part == "reports" else None)
    for part in ("mkdocs.yml", "dvc.lock", "CONTRIBUTING.md"):
        if (REPO / part).exists():
            shutil.copy(REPO / part, root / part)
    return write_pages(root)
