"""The results' pages: the results index and a page per result with its provenance (the replication
status page, which gathers their verdicts, is ``mechatlas.site.dashboard``).

Each page is a pure function of the ``Site`` returning Markdown; ``mechatlas.site.pages`` writes them.
A result page's headline comes from the experiment's own headline maker (``mechatlas.site.tables.headline``
finds it through ``mechatlas.experiments.registry``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mechatlas.experiments import registry
from mechatlas.markdown import fence, figure_html, md_code, md_text, table
from mechatlas.records import code_version
from mechatlas.site.citations import verdict_badge
from mechatlas.site.context import (
    ORGANISM_PAGE,
    RESULTS,
    SEARCH_BOOST,
    Site,
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
from mechatlas.site.tables import findings, headline, render_metrics
from mechatlas.site.text import judge_name, prose, readable_record_text, relative, without_judges

FOLD_DEPENDENCIES = 8  # a longer list of a stage's dependencies is folded away on a result page

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
    if site.planted:
        lines += [
            "## Validation on planted organisms",
            "",
            f"{len(site.planted)} planted organism(s), whose refusal mechanism is known by construction: "
            f"[what each estimator recovers there]({relative(page, 'generated/results/validation/index.md')}).",
            "",
        ]
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


def opening(site: Site, result: Result) -> str:
    """The page's first paragraph: what was found, from the record, with intervals and controls."""
    sentences = findings(result.experiment, result.metrics)
    where = site.model_description(result.model if result.model is not None else "organism")
    if not sentences:
        return md_text(
            f"Measured on {where}. This record has no summary of its findings; the tables below hold every number."
        )
    return f"**What we found, on {md_text(where)}.** " + " ".join(md_text(s) for s in sentences)


def short_model(site: Site, model: str | None) -> str:
    """A model's name for a table cell: ``the organism`` for the built-in one."""
    return "the organism" if model in (None, "organism") else str(model)


def verdict_scope(site: Site, result: Result, paper: str, claim: str) -> str:
    """What part of a claim a verdict covers: the model it was tested on and what was measured."""
    known = site.library.papers.get(paper)
    text = f"on {short_model(site, result.model)} only"
    if known is not None and known.own_work:
        text += " (a hypothesis of ours)"
    rule = _rule(result, paper, claim)
    if rule:
        measured = readable_record_text(rule.split(". ")[0].rstrip("."))
        text += f"; measured: {measured}"
    return text + "."


def papers_scope(site: Site, result: Result) -> list[str]:
    """One line per published paper the result addresses: the models its claims are about."""
    lines = []
    for key in dict.fromkeys(c.paper for c in result.claims):
        known = site.library.papers.get(key)
        if known is None or known.own_work or not known.models:
            continue
        lines.append(
            f"{paper_ref(site, key, result.page)} studied {md_text('; '.join(known.models))}; "
            f"our verdicts on its claims are on {md_text(short_model(site, result.model))} alone."
        )
    return lines


def sub_criteria(fields: Mapping[str, Any]) -> str:
    """Per-judge verdicts, sub-criteria and a pending reason, where a record gives them ("—" if none)."""
    parts = []
    criteria = fields.get("criteria") or fields.get("sub_criteria")
    if isinstance(criteria, Mapping):
        for name, passed in criteria.items():
            mark = passed.get("passed") if isinstance(passed, Mapping) else passed
            parts.append(
                f"{md_text(name)}: {'passed' if mark is True else 'failed' if mark is False else md_text(mark)}"
            )
    elif isinstance(criteria, list):
        for item in criteria:
            if isinstance(item, Mapping):
                mark = item.get("passed")
                parts.append(
                    f"{md_text(item.get('name', '?'))}: {'passed' if mark is True else 'failed' if mark is False else md_text(mark)}"
                )
    judges = fields.get("judges") or fields.get("per_judge")
    if isinstance(judges, Mapping):
        verdicts = []
        for judge, verdict in judges.items():
            shown = verdict.get("verdict") if isinstance(verdict, Mapping) else verdict
            verdicts.append(shown)
            parts.append(f"{md_text(judge_name(str(judge)))}: {md_text(shown)}")
        if len(set(map(str, verdicts))) > 1:
            parts.append("**the verdict differs between judges**")
    if fields.get("pending_reason"):
        parts.append(f"pending: {md_text(fields['pending_reason'])}")
    if fields.get("measures"):
        measures = fields["measures"]
        parts.append(
            "measures: " + md_text(", ".join(map(str, measures)) if isinstance(measures, list) else measures)
        )
    return "; ".join(parts) or "—"


def claim_judges(result: Result, claim: str) -> dict[str, str]:
    """The claim's verdict under each judge, from the record's ``verdicts_by_judge`` (empty with one judge
    or none)."""
    panel = result.metrics.get("verdicts_by_judge")
    if not isinstance(panel, Mapping) or len(panel) < 2:
        return {}
    return {str(j): str(v[claim]) for j, v in panel.items() if isinstance(v, Mapping) and claim in v}


def _rule(result: Result, paper: str, claim: str) -> str | None:
    rules = result.metrics.get("verdict_rules")
    if not isinstance(rules, Mapping):
        return None
    rule = rules.get(claim) or rules.get(f"{paper}/{claim}")
    return str(rule) if rule else None


def result_page_text(site: Site, result: Result) -> str:
    page = result.page
    lines = header(result_title(result), SEARCH_BOOST)
    lines += [opening(site, result), ""]
    links = [
        f"[Download the record ({md_text(Path(result.file).name)})]({relative(page, record_copy(result))})"
    ]
    posts = site.posts_about(result)
    links += [f"[Blog post: {md_text(post.title)}]({relative(page, post.page)})" for post in posts]
    links.append("[Cite this result](#cite-this-result)")
    lines += [" · ".join(links), ""]
    if result.is_organism:
        lines += [md_text(prose("organism-intro")), ""]
    else:
        lines += ["## Claims addressed", ""]
        if result.claims:
            counts = verdict_counts(c.verdict for c in result.claims)
            lines += [
                f"Verdicts on {len(result.claims)} claims, each on {md_text(site.model_description(result.model))} "
                f"only: {counts}. A verdict says whether the claim holds on this model by the rule stated "
                "with it; it is not a verdict on the models the paper studied.",
                "",
            ]
            rows = []
            rules = []
            for c in result.claims:
                claim = (
                    site.library.papers[c.paper].claim(c.claim) if c.paper in site.library.papers else None
                )
                if claim is not None:  # a known claim: its id is checked kebab-case, safe in an anchor
                    target = relative(page, paper_page(c.paper)) + f"#claim-{c.claim}"
                    described = f"[{md_text(c.claim)}]({target}): {md_text(claim.statement)}"
                else:
                    described = f"{md_text(c.claim)} (not in the library; run `mechatlas lit check`)"
                fields = result.replicate_fields(c.paper, c.claim)
                judges = claim_judges(result, c.claim)
                if judges:  # shown in their own column, so the reason need not repeat them
                    fields = {**fields, "judges": judges}
                reason = without_judges(c.reason) if judges and c.reason else c.reason
                rows.append(
                    [
                        paper_ref(site, c.paper, page)
                        if c.paper in site.library.papers
                        else md_text(c.paper),
                        described,
                        verdict_badge(c.verdict)
                        + "<br>"
                        + md_text(verdict_scope(site, result, c.paper, c.claim)),
                        sub_criteria(fields),
                        md_text(readable_record_text(reason)) if reason else "—",
                    ]
                )
                rule = _rule(result, c.paper, c.claim)
                if rule:
                    rules.append(f"- **{md_text(c.claim)}**: {md_text(rule)}")
            lines += [*(f"- {line}" for line in papers_scope(site, result)), ""]
            if all(row[3] == "—" for row in rows):  # no record field for sub-criteria yet: no empty column
                rows = [row[:3] + row[4:] for row in rows]
                lines += table(["paper", "claim", "verdict and what it covers", "our numbers"], rows)
            else:
                lines += table(
                    ["paper", "claim", "verdict and what it covers", "sub-criteria", "our numbers"], rows
                )
            if rules:
                lines += ['??? info "The verdict rules, as the record states them"', ""]
                lines += [f"    {rule}" for rule in rules] + [""]
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

    lines += figures_section(result)

    lines += ["## All numbers", ""]
    lines += [prose("all-numbers"), ""]
    lines += ['??? note "Every value in the record, as tables"', ""]
    # Headings inside the fold would crowd the page's table of contents: level 7 writes them in bold.
    lines += [("    " + line) if line else "" for line in render_metrics(result.metrics, level=7).split("\n")]
    lines += [""]
    lines += provenance_section(result)
    lines += cite_section(site, result)
    return "\n".join(lines)


def figures_section(result: Result) -> list[str]:
    """Numbered figures, each with its caption (what to look at) below it; click to zoom. A result
    without figures has no Figures section (an empty heading would only say there is nothing)."""
    if not result.figures:
        return []
    lines = ["## Figures", ""]
    captions = figure_captions(result)
    notes = figure_notes(result)
    number = 0
    for figure in result.figures:
        stem = Path(figure).stem
        title, look = captions.get(stem, (_caption(figure), ""))
        kind, note = notes.get(stem, ("", ""))
        target = relative(result.page, figure)
        if kind == "replace":  # an empty or degenerate plot: say what it would show, in words
            lines += [f"**{md_text(title)}.** {md_text(note)} ([the plot]({target}))", ""]
            continue
        if note:
            look = f"{look} {note}".strip()
        number += 1
        lines += [figure_html(number, target, title, look), ""]
    if result.figure_notes:
        lines += [
            f"How these figures were made: [figure notes]({relative(result.page, result.figure_notes)}).",
            "",
        ]
    return lines


def figure_captions(result: Result) -> dict[str, tuple[str, str]]:
    """Captions by figure stem, as the registry gives them for the experiment: a title and what to look at."""
    entry = registry.find(result.experiment)
    return dict(entry.captions) if entry is not None else {}


def figure_notes(result: Result) -> dict[str, tuple[str, str]]:
    """The experiment's notes on its figures, from the record; {} when it has none or they fail."""
    entry = registry.find(result.experiment)
    make = entry.figure_notes_function() if entry is not None else None
    if make is None:
        return {}
    try:
        return dict(make(result.metrics))
    except (KeyError, TypeError, AttributeError, ValueError):
        return {}


def cite_section(site: Site, result: Result) -> list[str]:
    """A BibTeX entry for this result page."""
    code = code_version(result.provenance)
    key = f"mechatlas-{result.key.replace('/', '-')}"
    entry = (
        f"@misc{{{key},\n"
        f"  title = {{{{mechatlas}}: {result_title(result)}}},\n"
        "  author = {{mechatlas contributors}},\n"
        f"  note = {{Result record {result.file}, {code}}},\n"
        f"  howpublished = {{mechatlas survey site, {result.page.removesuffix('index.md')}}}\n"
        "}"
    )
    return ["## Cite this result", "", fence(entry, "bibtex"), ""]


def numerics_text(numerics: dict[str, Any]) -> str:
    """``numerics_record`` in words: the capability torch used, MKL's branch, torch's version and threads,
    the pins."""
    env = numerics.get("environment") or {}
    caps = ", ".join(f"{k}={v}" for k, v in env.items() if v) or "no kernel pins"
    if "cpu_capability" not in numerics:
        return f"{caps} (no torch in this stage)"
    mkl = f", MKL branch {numerics['mkl_branch']}" if numerics.get("mkl_branch") else ""
    return f"{numerics['cpu_capability']}{mkl} (torch {numerics['torch']}, {numerics['threads']} threads; {caps})"


def provenance_section(result: Result) -> list[str]:
    """Commit, params hash, model and revision, seeds, CPU kernels, command, and what dvc.lock recorded."""
    p = result.provenance
    model = p["model"]
    code = p["code"]
    commit = code.get("commit")
    seeds = p.get("seeds") or {}
    rows = [
        [
            "commit",
            md_code(str(commit)) if commit and commit != "unknown" else md_text(code_version(p)),
        ],
        [
            "code",
            f"sha256 {md_code(code['sha256'])} of the {code.get('files', 0)} files DVC stage "
            f"{md_code(code.get('stage', ''))} runs",
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
    if p.get("numerics"):
        rows.append(["CPU kernels", md_text(numerics_text(p["numerics"]))])
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
        deps = table(
            ["dependency", "md5"], ([f"{md_code(path)}", f"{md_code(md5)}"] for path, md5 in stage.deps)
        )
        if len(stage.deps) > FOLD_DEPENDENCIES:  # a stage reads dozens of source files: one click away
            lines += [
                f'??? note "The {len(stage.deps)} files and folders the stage reads, with their md5"',
                "",
            ]
            lines += [("    " + line) if line else "" for line in deps]
        else:
            lines += deps
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
