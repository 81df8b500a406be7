"""The literature's pages: the survey tree, the methods and the papers.

Each page is a pure function of the ``Site`` returning Markdown; ``mechatlas.site.pages`` writes them.
"""

from __future__ import annotations

from mechatlas.literature.clusters import ClaimKey, Cluster
from mechatlas.literature.papers import Claim
from mechatlas.markdown import fence, md_link, md_text, table
from mechatlas.site.citations import reference_markdown, verdict_badge
from mechatlas.site.context import (
    CLUSTERS,
    METHODS,
    OPEN,
    PAPERS,
    REPLICATION,
    SEARCH_BOOST,
    SURVEY,
    Site,
    claim_anchor,
    cluster_page,
    evidence,
    header,
    join,
    method_page,
    method_ref,
    paper_page,
    paper_ref,
    result_ref,
    verdict_counts,
)
from mechatlas.site.text import prose, relative, safe_url

# --- The survey tree and the methods ------------------------------------------------------------------


def survey_page(site: Site) -> str:
    page = SURVEY
    lines = header("Survey: the map of methods")
    lines += [prose("survey-intro"), ""]
    for node, depth in site.tree():
        papers = len(site.library.papers_using(node.id))
        results = len(site.results_using(node.id))
        facts = f"{node.kind.value} · {node.granularity.value} · {node.approach.value}"
        counts = f"{papers} paper{'s' * (papers != 1)}" + (
            f" · **{results} result{'s' * (results != 1)}**" if results else ""
        )
        lines.append(f"{'    ' * depth}- {method_ref(site, node.id, page)} — *{facts}* — {counts}")
    return "\n".join([*lines, ""])


def methods_index(site: Site) -> str:
    page = METHODS
    lines = header("Methods")
    lines += [
        f"All {len(site.library.taxonomy)} methods and concepts of the [survey tree]({relative(page, SURVEY)}), "
        "in tree order; indentation shows depth.",
        "",
    ]
    rows = [
        [
            "&#160;&#160;&#160;&#160;" * depth + method_ref(site, node.id, page),
            node.kind.value,
            node.granularity.value,
            node.approach.value,
            str(len(site.library.papers_using(node.id))),
            str(len(site.results_using(node.id))),
        ]
        for node, depth in site.tree()
    ]
    lines += table(["method", "kind", "granularity", "approach", "papers", "our results"], rows)
    return "\n".join(lines)


def method_page_text(site: Site, node_id: str) -> str:
    node = site.library.node(node_id)
    page = method_page(node_id)
    taxonomy = site.library.taxonomy
    lines = header(node.name, SEARCH_BOOST)
    trail = [md_link("Survey", relative(page, SURVEY))]
    trail += [method_ref(site, a.id, page) for a in reversed(taxonomy.ancestors(node_id))]
    lines += [" › ".join([*trail, f"**{md_text(node.name)}**"]), ""]
    lines += table(
        ["kind", "granularity", "approach"], [[node.kind.value, node.granularity.value, node.approach.value]]
    )
    lines += [md_text(node.summary), ""]

    lines += ["## Place in the tree", ""]
    parent = f"{method_ref(site, node.parent, page)}" if node.parent else "none: a root of the survey"
    children = [method_ref(site, c.id, page) for c in taxonomy.children(node_id)]
    siblings = [
        method_ref(site, s.id, page)
        for s in (taxonomy.children(node.parent) if node.parent else taxonomy.roots())
        if s.id != node_id
    ]
    lines += [
        f"- **Parent:** {parent}",
        f"- **Sub-methods:** {join(children)}",
        f"- **Alongside:** {join(siblings)}",
        "",
    ]

    lines += ["## Key papers", ""]
    lines += [f"- {paper_ref(site, key, page)}: {md_text(site.title(key))}" for key in node.references]
    lines.append("")

    users = site.library.papers_using(node_id)
    lines += ["## Papers that use it", ""]
    if users:
        lines += table(
            ["paper", "title", "claims"],
            ([paper_ref(site, p.key, page), md_text(site.title(p.key)), str(len(p.claims))] for p in users),
        )
    else:
        lines += ["No paper in the library lists this method yet.", ""]

    results = site.results_using(node_id)
    lines += ["## Our results that use it", ""]
    if results:
        lines += table(
            ["result", "verdicts on paper claims"],
            ([result_ref(r, page), verdict_counts(c.verdict for c in r.claims)] for r in results),
        )
    else:
        lines += [
            "No result of ours uses it yet: see the [untested claims]("
            + relative(page, REPLICATION)
            + "#untested-claims-work-to-pick-up) for work to pick up.",
            "",
        ]
    return "\n".join(lines)


# --- Papers ----------------------------------------------------------------------------------------


def _topic(site: Site, key: str) -> str:
    """A paper's topic: the survey's top-level branch of the first method it lists."""
    taxonomy = site.library.taxonomy
    for method in site.library.paper(key).methods:
        if method in taxonomy:
            chain = [taxonomy.node(method), *taxonomy.ancestors(method)]
            return chain[-2].name if len(chain) >= 2 else chain[-1].name
    return "Other"


def _year(site: Site, key: str) -> int:
    year = site.library.bibliography.entry(key).year.strip()
    return int(year) if year.isdigit() else 0


def papers_index(site: Site) -> str:
    page = PAPERS
    lines = header("Papers")
    keys = list(site.library.papers)
    lines += [
        f"All {len(keys)} papers in the library by topic (the survey's top-level branches), newest first, "
        f"with the verdicts of our replications of their claims. The [replication status]"
        f"({relative(page, REPLICATION)}) page lists every verdict; the whole library is "
        f"[one BibTeX file]({relative(page, 'generated/references.bib')}).",
        "",
    ]
    topics: dict[str, list[str]] = {}
    for key in keys:
        topics.setdefault(_topic(site, key), []).append(key)
    for topic in sorted(topics, key=lambda t: (t == "Other", t.lower())):
        lines += [f"## {md_text(topic)}", ""]
        rows = []
        for key in sorted(topics[topic], key=lambda k: (-_year(site, k), site.labels[k].lower())):
            paper = site.library.paper(key)
            flags = " *(our own work)*" if paper.own_work else ""
            rows.append(
                [
                    md_text(site.library.bibliography.entry(key).year),
                    paper_ref(site, key, page),
                    md_text(site.title(key)) + flags,
                    str(len(paper.claims)),
                    verdict_counts(r.verdict for r in site.replications_of(key)),
                ]
            )
        lines += table(["year", "paper", "title", "claims", "our verdicts"], rows)
    return "\n".join(lines)


def _links(site: Site, key: str) -> list[str]:
    entry = site.library.bibliography.entry(key)
    links = []
    if entry.doi:
        links.append(md_link(f"DOI {entry.doi}", safe_url(f"https://doi.org/{entry.doi}") or "#"))
    if entry.arxiv_id:
        links.append(
            md_link(f"arXiv:{entry.arxiv_id}", safe_url(f"https://arxiv.org/abs/{entry.arxiv_id}") or "#")
        )
    url = safe_url(entry.url) if entry.url else None
    if url and not any(url in link for link in links):
        links.append(md_link("Web page", url))
    return links


def paper_page_text(site: Site, key: str) -> str:
    paper = site.library.paper(key)
    entry = site.library.bibliography.entry(key)
    page = paper_page(key)
    front = "tags:\n" + "".join(f"  - {tag}\n" for tag in paper.tags) if paper.tags else ""
    lines = header(site.title(key), front)
    flags = []
    if paper.own_work:
        flags.append("**Our own work:** the hypotheses of the mechatlas blog series.")
    if paper.unverified:
        flags.append("**Unverified:** this entry's bibliographic details have not been checked yet.")
    lines += [*(f"!!! note\n    {flag}\n" for flag in flags)]
    lines += [reference_markdown(entry), ""]
    links = _links(site, key)
    if links:
        lines += [" · ".join(links), ""]
    lines += [f"Cite as {md_text(site.labels[key])}:", "", fence(entry.source, "bibtex"), ""]
    if paper.summary:
        lines += ["## Summary", "", md_text(paper.summary), ""]

    lines += ["## Methods", ""]
    lines += [
        f"- {method_ref(site, m, page)} ({site.library.node(m).kind.value})" for m in paper.methods
    ] or ["None recorded."]
    lines += ["", "## Models studied", ""]
    lines += [f"- {md_text(model)}" for model in paper.models] or ["None recorded."]
    lines.append("")

    lines += ["## Claims and our replications", ""]
    if not paper.claims:
        lines += ["No claims recorded yet.", ""]
    clusters = {c: cluster for cluster in site.library.clusters() for c in cluster.claims}
    for claim in paper.claims:
        lines += [f"### Claim: {md_text(claim.id)}", ""]
        lines += [f"**Claim.** {md_text(claim.statement)}", ""]
        lines += [f"**Evidence in the paper.** {md_text(claim.evidence)}", ""]
        if claim.location:
            lines += [f"**Where in the paper.** {md_text(claim.location)}", ""]
        for relation in ("supports", "contradicts"):
            refs = [_claim_ref(site, ref, page) for ref in getattr(claim, relation)]
            if refs:
                lines += [f"**{relation.capitalize()}.** {join(refs)}", ""]
        cluster = clusters.get((key, claim.id))
        if cluster is not None:
            lines += [
                f"**Related claims.** Part of the cluster "
                f"{md_link(cluster.name, relative(page, cluster_page(cluster.id)))}.",
                "",
            ]
        if claim.testable_by:
            methods = join([method_ref(site, m, page) for m in claim.testable_by])
            lines += [f"**Testable by.** {methods}", ""]
        ours = site.replications_of(key, claim.id)
        if ours:
            lines += table(
                ["our result", "verdict", "why"],
                (
                    [
                        evidence(r, page) + (" (recorded by hand)" if r.by_hand else ""),
                        verdict_badge(r.verdict),
                        md_text(r.why) if r.why else "—",
                    ]
                    for r in ours
                ),
            )
        else:
            lines += ["*Not replicated by us yet.*", ""]

    posts = site.posts_about(paper=key)
    if posts:
        lines += ["## On the blog", ""]
        lines += [f"- [{md_text(post.title)}]({relative(page, post.page)})" for post in posts]
        lines.append("")

    citing = [n for n, _ in site.tree() if key in n.references]
    if citing:
        lines += ["## In the survey", "", "A key paper of:", ""]
        lines += [f"- {method_ref(site, n.id, page)}" for n in citing]
        lines.append("")
    return "\n".join(lines)


# --- Clusters of related claims, and claims open for replication -------------------------------------


def _claim_ref(site: Site, ref: str, page: str) -> str:
    """A link to ``<bibkey>:<claim-id>`` on its paper's page, labelled by the paper and the claim."""
    key, _, claim_id = ref.partition(":")
    if key not in site.library.papers:
        return md_text(ref)
    target = relative(page, paper_page(key)) + claim_anchor(claim_id)
    return f"{md_link(site.labels[key], target)}: {md_text(claim_id)}"


def _our_verdicts(site: Site, key: str, claim_id: str, page: str) -> str:
    ours = site.replications_of(key, claim_id)
    if not ours:
        return "*not tested yet*"
    return "<br>".join(
        f"{verdict_badge(r.verdict)} {evidence(r, page)}" + (" (by hand)" if r.by_hand else "") for r in ours
    )


def _relations(site: Site, cluster: Cluster, claim: ClaimKey, page: str) -> str:
    parts = [
        f"{link.relation} {_claim_ref(site, ':'.join(link.target), page)}"
        for link in cluster.links_from(claim)
    ]
    parts += [
        f"{link.relation.removesuffix('s')}ed by {_claim_ref(site, ':'.join(link.source), page)}"
        for link in cluster.links_to(claim)
    ]
    return "<br>".join(parts) or "—"


def clusters_index(site: Site) -> str:
    page = CLUSTERS
    lines = header("Related claims")
    clusters = site.library.clusters()
    lines += [
        "Claims of different papers that speak to one question, joined by the `supports` and `contradicts` "
        "links written in the paper files. Each cluster has a page with the papers' claims side by side and "
        f"our verdicts beside them. Claims a result of ours could test are listed under "
        f"[open for replication]({relative(page, OPEN)}).",
        "",
    ]
    if not clusters:
        return "\n".join([*lines, "No claims are linked yet.", ""])
    rows = []
    for cluster in clusters:
        papers = {key for key, _ in cluster.claims}
        rows.append(
            [
                md_link(cluster.name, relative(page, cluster_page(cluster.id))),
                str(len(papers)),
                str(len(cluster.claims)),
                verdict_counts(
                    r.verdict for key, claim in cluster.claims for r in site.replications_of(key, claim)
                ),
            ]
        )
    lines += table(["cluster", "papers", "claims", "our verdicts"], rows)
    return "\n".join(lines)


def cluster_page_text(site: Site, cluster: Cluster) -> str:
    page = cluster_page(cluster.id)
    lines = header(cluster.name)
    lines += [md_link("Related claims", relative(page, CLUSTERS)) + f" › **{md_text(cluster.name)}**", ""]
    if cluster.summary:
        lines += [md_text(cluster.summary), ""]
    lines += [
        "Each row is one paper's claim, in our words, with where the paper gives its evidence, how it relates to "
        "the other claims here, and the verdicts of our experiments on it (each verdict names the model it was "
        "reached on; follow the link for the numbers).",
        "",
    ]
    rows = []
    for key, claim_id in cluster.claims:
        paper = site.library.paper(key)
        claim = paper.claim(claim_id)
        if claim is None:  # the cluster is built from the library's own papers
            continue
        label = paper_ref(site, key, page) + (" *(our hypothesis)*" if paper.own_work else "")
        rows.append(
            [
                label,
                md_link(claim_id, relative(page, paper_page(key)) + claim_anchor(claim_id))
                + ": "
                + md_text(claim.statement),
                md_text(claim.location) if claim.location else "—",
                _relations(site, cluster, (key, claim_id), page),
                _our_verdicts(site, key, claim_id, page),
            ]
        )
    lines += table(["paper", "claim", "where in the paper", "relation", "our verdict"], rows)
    return "\n".join(lines)


def open_page(site: Site) -> str:
    page = OPEN
    lines = header("Open for replication")
    testable = site.library.testable_claims()
    open_claims = [(key, claim) for key, claim in testable if not site.replications_of(key, claim.id)]
    tested = [(key, claim) for key, claim in testable if site.replications_of(key, claim.id)]
    lines += [
        "Paper claims that a result of ours could test with methods the survey already has (their "
        f"`testable_by` field): {len(open_claims)} still open, {len(tested)} with a verdict. A contribution "
        "that tests one adds a result record whose `replicates` names the claim (CONTRIBUTING.md).",
        "",
        "## Open",
        "",
    ]

    def rows(claims: list[tuple[str, Claim]]) -> list[list[str]]:
        out = []
        for key, claim in claims:
            out.append(
                [
                    paper_ref(site, key, page),
                    md_link(claim.id, relative(page, paper_page(key)) + claim_anchor(claim.id))
                    + ": "
                    + md_text(claim.statement),
                    md_text(claim.location) if claim.location else "—",
                    join([method_ref(site, m, page) for m in claim.testable_by]),
                    _our_verdicts(site, key, claim.id, page),
                ]
            )
        return out

    header_row = ["paper", "claim", "where in the paper", "testable by", "our verdict"]
    lines += (
        table(header_row, rows(open_claims))
        if open_claims
        else ["None: every testable claim has a verdict.", ""]
    )
    lines += ["## Already tested", ""]
    lines += table(header_row, rows(tested)) if tested else ["None yet.", ""]
    return "\n".join(lines)
