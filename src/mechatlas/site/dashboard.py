"""The replication status page (the dashboard): every verdict our runs give on a paper's claim, published
claims apart from the team's own hypotheses, and the published claims no run tests yet.

A pure function of the ``Site`` returning Markdown, like the result pages it links to
(``mechatlas.site.result_pages``, whose verdict scope and sub-criteria it shows); ``mechatlas.site.pages``
writes it.
"""

from __future__ import annotations

from mechatlas.markdown import md_text, table
from mechatlas.site.citations import verdict_badge
from mechatlas.site.context import (
    REPLICATION,
    Replication,
    Site,
    evidence,
    header,
    paper_page,
    paper_ref,
    verdict_counts,
)
from mechatlas.site.result_pages import short_model, sub_criteria, verdict_scope
from mechatlas.site.text import prose, readable_record_text, relative


def _replication_row(site: Site, r: Replication, page: str) -> list[str]:
    known = site.library.papers.get(r.paper)  # `mechatlas lit check` runs first; stay robust without it
    claim = known.claim(r.claim) if known else None
    fields = r.result.replicate_fields(r.paper, r.claim) if r.result is not None else {}
    reported = fields.get("paper_value") or fields.get("paper_reports")
    studied = (
        f" *(the paper studied {md_text('; '.join(known.models))})*"
        if known is not None and not known.own_work and known.models
        else ""
    )
    scope = (
        verdict_scope(site, r.result, r.paper, r.claim)
        if r.result is not None
        else f"on {short_model(site, r.model)} only."
    )
    return [
        paper_ref(site, r.paper, page) if known else md_text(r.paper),
        (
            f"[{md_text(r.claim)}]({relative(page, paper_page(r.paper))}#claim-{r.claim})"
            if claim
            else md_text(r.claim)
        )
        + (f": {md_text(claim.statement)}" if claim else "")
        + studied,
        verdict_badge(r.verdict) + "<br>" + md_text(scope),
        sub_criteria(fields),
        md_text(reported) if reported else "—",
        (md_text(readable_record_text(r.why)) if r.why else "—") + " · " + evidence(r, page),
    ]


DASHBOARD_HEADER = [
    "paper",
    "claim",
    "verdict and what it covers",
    "sub-criteria",
    "paper reports",
    "our numbers",
]


OPTIONAL_COLUMNS = ("sub-criteria", "paper reports")  # shown once some record or paper gives them


def dashboard_table(rows: list[list[str]]) -> list[str]:
    """The dashboard's table, without the optional columns that no row fills (a column of dashes says
    nothing to a reader)."""
    keep = [
        i
        for i, name in enumerate(DASHBOARD_HEADER)
        if name not in OPTIONAL_COLUMNS or any(row[i] != "—" for row in rows)
    ]
    return table([DASHBOARD_HEADER[i] for i in keep], ([row[i] for i in keep] for row in rows))


def replication_page(site: Site) -> str:
    page = REPLICATION
    lines = header("Replication status")
    published = [r for r in site.replications if not _own(site, r.paper)]
    ours = [r for r in site.replications if _own(site, r.paper)]
    claims = [(key, c) for key, p in site.library.papers.items() if not p.own_work for c in p.claims]
    addressed = {(r.paper, r.claim) for r in site.replications}
    lines += [
        f"Of the {len(claims)} published claims in the library, {len({(r.paper, r.claim) for r in published})} "
        f"have a verdict from our runs: {verdict_counts(r.verdict for r in published)}. "
        f"Separately, {len(ours)} verdicts test the team's own hypotheses: {verdict_counts(r.verdict for r in ours)}. "
        "Every verdict is on the model named beside it, not on the models the paper studied.",
        "",
        prose("verdicts"),
        "",
        '<div class="mechatlas-filter" data-filter-tables></div>',
        "",
    ]
    if not site.replications:
        lines += ["No replications yet: run `make run`.", ""]
    lines += ["## Published claims", ""]
    lines += (
        dashboard_table([_replication_row(site, r, page) for r in published])
        if published
        else ["None yet.", ""]
    )
    lines += ["## The team's hypotheses", ""]
    lines += dashboard_table([_replication_row(site, r, page) for r in ours]) if ours else ["None yet.", ""]
    untested = [(key, c) for key, c in claims if (key, c.id) not in addressed]
    lines += ["## Untested claims: work to pick up", ""]
    lines += [
        f"{len(untested)} published claims have no replication yet. Each needs an experiment (or a model) "
        "that can test it; see CONTRIBUTING for how to add one.",
        "",
    ]
    if untested:
        lines += table(
            ["paper", "claim", "paper's evidence"],
            (
                [
                    paper_ref(site, key, page),
                    f"[{md_text(c.id)}]({relative(page, paper_page(key))}#claim-{c.id}): {md_text(c.statement)}",
                    md_text(c.evidence),
                ]
                for key, c in sorted(untested, key=lambda kc: (site.labels[kc[0]].lower(), kc[1].id))
            ),
        )
    return "\n".join(lines)


def _own(site: Site, paper: str) -> bool:
    known = site.library.papers.get(paper)
    return bool(known and known.own_work)
