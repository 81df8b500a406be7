"""The results' pages: the results index, a page per result with its provenance, and replication status.

Each page is a pure function of the ``Site`` returning Markdown; ``mechatlas.site.pages`` writes them.
A result page's headline comes from the experiment's own headline maker (``mechatlas.site.tables.headline``
finds it through ``mechatlas.experiments.registry``).
"""

from __future__ import annotations

from pathlib import Path

from mechatlas.markdown import fence, md_code, md_text, table
from mechatlas.records import code_version
from mechatlas.site.citations import verdict_badge
from mechatlas.site.context import (
    ORGANISM_PAGE,
    REPLICATION,
    RESULTS,
    Site,
    evidence,
    header,
    method_ref,
    paper_page,
    paper_ref,
    record_copy,
    result_ref,
    result_title,
    verdict_counts,
)
from mechatlas.site.records import Result
from mechatlas.site.tables import headline, render_metrics
from mechatlas.site.text import prose, relative

# --- Results --------------------------------------------------------------------------------------


def results_index(site: Site) -> str:
    page = RESULTS
    lines = header("Results")
    lines += [prose("results-intro"), ""]
    organism = next((r for r in site.results if r.model is None), None)
    lines += ["## The model organism", ""]
    if organism is None:
        lines += [
            md_text(prose("organism-intro")),
            "",
            f"Its behaviour record is not in this build yet ([organism page]({relative(page, ORGANISM_PAGE)})).",
            "",
        ]
    else:
        lines += [md_text(prose("organism-intro")), "", f"See {result_ref(organism, page)}.", ""]
    lines += ["## Experiments", ""]
    if not site.experiments:
        lines += ["No experiment results in this build yet: run `make run`.", ""]
    else:
        lines += table(
            ["result", "experiment", "model", "verdicts on paper claims", "figures", "code"],
            (
                [
                    result_ref(r, page),
                    md_text(r.experiment),
                    md_text(r.model),
                    verdict_counts(c.verdict for c in r.claims),
                    str(len(r.figures)),
                    md_text(code_version(r.provenance)),
                ]
                for r in site.experiments
            ),
        )
    return "\n".join(lines)


def _caption(figure: str) -> str:
    return Path(figure).stem.replace("_", " ").replace("-", " ").capitalize()


def result_page_text(site: Site, result: Result) -> str:
    page = result.page
    lines = header(result_title(result))
    lines += [
        f"Generated from the result record {md_code(result.file)} "
        f"([download it]({relative(page, record_copy(result))})), the evidence this page cites.",
        "",
    ]
    if result.is_organism:
        lines += [md_text(prose("organism-intro")), ""]
    else:
        lines += ["## Claims addressed", ""]
        if result.claims:
            rows = []
            for c in result.claims:
                claim = (
                    site.library.papers[c.paper].claim(c.claim) if c.paper in site.library.papers else None
                )
                if claim is not None:  # a known claim: its id is checked kebab-case, safe in an anchor
                    target = relative(page, paper_page(c.paper)) + f"#claim-{c.claim}"
                    described = f"[{md_text(c.claim)}]({target}): {md_text(claim.statement)}"
                else:
                    described = f"{md_text(c.claim)} (not in the library; run `mechatlas lit check`)"
                rows.append(
                    [
                        paper_ref(site, c.paper, page)
                        if c.paper in site.library.papers
                        else md_text(c.paper),
                        described,
                        verdict_badge(c.verdict),
                        md_text(c.reason) if c.reason else "—",
                    ]
                )
            lines += table(["paper", "claim", "verdict", "why"], rows)
        else:
            lines += ["This result does not address a paper claim.", ""]
        if result.methods:
            lines += [
                "**Methods used:** "
                + ", ".join(
                    method_ref(site, m, page) if m in site.library.taxonomy else md_text(m)
                    for m in result.methods
                ),
                "",
            ]

    top = headline(result.experiment, result.metrics)
    if top:
        lines += ["## Headline", "", top]

    lines += ["## Figures", ""]
    if result.figures:
        for figure in result.figures:
            lines += [f"![{md_text(_caption(figure))}]({relative(page, figure)})", ""]
            lines += [f"*{md_text(_caption(figure))}* ({md_code(figure)}), drawn from this record.", ""]
        if result.figure_notes:
            lines += [
                f"How these figures were made: [figure notes]({relative(page, result.figure_notes)}).",
                "",
            ]
    else:
        lines += ["No figures for this result.", ""]

    lines += ["## All numbers", ""]
    lines += [
        prose("all-numbers"),
        "",
        render_metrics(result.metrics, level=3),
    ]
    lines += provenance_section(result)
    return "\n".join(lines)


def provenance_section(result: Result) -> list[str]:
    """Commit, params hash, model and revision, seeds, command, and what dvc.lock recorded."""
    p = result.provenance
    model = p["model"]
    code = p["code"]
    commit = code.get("commit")
    seeds = p.get("seeds") or {}
    rows = [
        [
            "code",
            f"{md_text(code_version(p))}; sha256 of its {code.get('files', 0)} files {md_code(code['sha256'])} "
            f"(DVC stage {md_code(code.get('stage', ''))})",
        ],
        [
            "params hash",
            f"{md_code(p['params_hash'])} (of params.yaml sections: {md_text(', '.join(p['params_sections']))})",
        ],
        ["model", md_text(model["name"])],
        ["model id", f"{md_code(model['id'])}"],
        [
            "model revision",
            f"{md_code(model['revision'])}" if model.get("revision") else "none (a local model)",
        ],
        ["seeds", md_text(", ".join(f"{k} = {v}" for k, v in seeds.items())) if seeds else "none"],
    ]
    lines = ["## Provenance", "", *table(["", ""], rows)]
    lines += ["The command that reproduces this result (from the repository root):", ""]
    lines += [fence(str(p["command"]), "bash"), ""]
    if commit and commit != "unknown":
        lines += [f"Check out commit {md_code(str(commit)[:12])} first to rerun the code that made it.", ""]

    lines += ["### Inputs recorded in dvc.lock", ""]
    if not result.lock_found:
        lines += [
            "**Not yet recorded in dvc.lock**: there is no dvc.lock in this build. `make run` records one.",
            "",
        ]
    elif not result.stages:
        lines += [
            "**Not yet recorded in dvc.lock**: no stage in dvc.lock lists this record among its outputs, so its "
            "inputs have no recorded hashes yet. `make run` (which runs `dvc repro`) records them.",
            "",
        ]
    for stage in result.stages:
        lines += [
            f"Stage {md_code(stage.name)}: inputs hash **`{stage.inputs_hash}`** "
            f"(a digest of the md5 of every dependency below).",
            "",
        ]
        lines += table(
            ["dependency", "md5"], ([f"{md_code(path)}", f"{md_code(md5)}"] for path, md5 in stage.deps)
        )
        lines += table(
            ["output", "md5"], ([f"{md_code(path)}", f"{md_code(md5)}"] for path, md5 in stage.outs)
        )
    if result.lock_matches is True:
        lines += ["dvc.lock's md5 of the record matches the file this page was made from.", ""]
    elif result.lock_matches is False:
        lines += [
            "!!! warning",
            "    dvc.lock records a different version of this record than the one shown here: the record was "
            "remade after dvc.lock was written. Run `make run` to record it.",
            "",
        ]
    return lines


def replication_page(site: Site) -> str:
    page = REPLICATION
    lines = header("Replication status")
    total = sum(len(p.claims) for p in site.library.papers.values())
    addressed = {(r.paper, r.claim) for r in site.replications}
    lines += [
        f"Every paper claim with a replication, and its verdict: {len(addressed)} of the {total} claims in the "
        f"library so far. {verdict_counts(r.verdict for r in site.replications)}",
        "",
        prose("verdicts"),
        "",
    ]
    if not site.replications:
        lines += ["No replications yet: run `make run`.", ""]
        return "\n".join(lines)
    rows = []
    for r in site.replications:
        known = site.library.papers.get(r.paper)  # `mechatlas lit check` runs first; stay robust without it
        claim = known.claim(r.claim) if known else None
        rows.append(
            [
                paper_ref(site, r.paper, page) if known else md_text(r.paper),
                (
                    f"[{md_text(r.claim)}]({relative(page, paper_page(r.paper))}#claim-{r.claim})"
                    if claim
                    else md_text(r.claim)
                )
                + (f": {md_text(claim.statement)}" if claim else ""),
                verdict_badge(r.verdict),
                evidence(r, page),
                md_text(r.why) if r.why else "—",
            ]
        )
    lines += table(["paper", "claim", "verdict", "evidence", "why"], rows)
    return "\n".join(lines)
