# The survey site, last in the DAG: check the literature, generate the pages from literature/ and the
# results, then `mkdocs build --strict`. Only these rules read literature/, so editing a paper YAML
# reruns only them. Logic lives in mechatlas.site.
#
# They are local rules on the repository checkout (cheap, and MkDocs needs the docs folder on disk): with
# a storage profile (Kubernetes) their sources and outputs stay local, and the results must be on local
# disk when they run (`dvc pull`).

localrules:
    lit_check,
    site_pages,
    site_build,


SITE_INDEX = "site/index.html"
LITERATURE = [
    local(path)
    for path in [
        "literature/references.bib",
        "literature/taxonomy.yaml",
        *sorted(str(p) for p in Path("literature/papers").glob("*.yaml")),
    ]
]
# Hand-written site sources: the pages and posts in pages/ (rendered into reports/ by site_pages), and the
# styles, scripts, templates and images in reports/ (not the generated pages, the rendered copies of pages/,
# the pipeline's figures or benchmark reports, which rules make).
PAGE_SOURCES = [local(str(p)) for p in sorted(Path("pages").rglob("*")) if p.is_file()]
RENDERED_PAGES = ["reports/index.md", "reports/tags.md"]
SITE_SOURCES = [
    local(str(p))
    for p in sorted(Path("reports").rglob("*"))
    if p.is_file()
    and p.parts[1] not in ("generated", "figures", "bench", "blog")
    and str(p) not in RENDERED_PAGES
    and p.suffix in (".md", ".yml", ".css", ".js", ".svg", ".png", ".html")
]
# Everything the study makes except the site itself (all_targets in common.smk): the site shows it all.
STUDY_OUTPUTS = [target for target in all_targets() if target != SITE_INDEX]


rule lit_check:
    input:
        literature=LITERATURE,
        results=[target for target in STUDY_OUTPUTS if target.endswith(".json")],
        pages=[source for source in PAGE_SOURCES if source.endswith(".md")],
    output:
        local(f"{LOGS}/lit_check.ok"),
    conda:
        ENV
    log:
        f"{LOGS}/lit_check.log",
    script:
        "../scripts/lit_check.py"


rule site_pages:
    input:
        check=local(f"{LOGS}/lit_check.ok"),
        literature=LITERATURE,
        sources=PAGE_SOURCES,
        contributing=[local(p) for p in ["CONTRIBUTING.md"] if Path(p).is_file()],
        study=STUDY_OUTPUTS,
    output:
        local(directory("reports/generated")),
        local(directory("reports/blog")),
        *(local(page) for page in RENDERED_PAGES),
    conda:
        ENV
    log:
        f"{LOGS}/site_pages.log",
    script:
        "../scripts/site_pages.py"


rule site_build:
    input:
        pages=local("reports/generated"),
        config=local("mkdocs.yml"),
        sources=SITE_SOURCES,
        study=STUDY_OUTPUTS,
    output:
        index=local(SITE_INDEX),
    conda:
        ENV
    log:
        f"{LOGS}/site_build.log",
    script:
        "../scripts/site_build.py"
