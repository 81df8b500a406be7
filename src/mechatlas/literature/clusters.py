"""Clusters of related claims: claims of different papers joined by ``supports`` and ``contradicts``.

A claim may say that it supports or contradicts claims of other papers (``<bibkey>:<claim-id>``). Those
links make a graph over claims; each connected part of it is a cluster, a set of claims that speak to
one question (is refusal one direction? is harmfulness a separate representation?). The site shows each
cluster as one table with our verdicts beside the papers' claims.

``literature/clusters.yaml`` (optional) names clusters. Each entry gives an ``id`` (the page's file
name), a ``name``, a ``summary`` and a ``seed`` claim; the cluster is the connected part that contains
the seed. A part with no named entry is still shown, under an id made from its first claim::

    clusters:
      - id: refusal-geometry
        name: Refusal geometry
        seed: arditi2024refusal:single-direction
        summary: >-
          One direction, several, a cone, or one per category?

``read_cluster_names`` validates the file; ``cluster_problems`` checks each seed against the papers;
``claim_clusters`` builds the clusters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mechatlas.literature.located import LocatedDict, LocatedList, line_at
from mechatlas.literature.papers import CLAIM_REF, Claim, Paper
from mechatlas.literature.problems import Problem
from mechatlas.literature.schema import read_yaml_file, validation_problems

CLUSTER_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
RELATIONS = ("supports", "contradicts")

ClaimKey = tuple[str, str]  # (paper key, claim id)


class ClusterName(BaseModel):
    """A name for the cluster that contains ``seed``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Kebab-case id; the cluster page is generated/clusters/<id>.md.")
    name: str = Field(description="The question the cluster's claims speak to, as a title.")
    seed: str = Field(description="One claim of the cluster, as <bibkey>:<claim-id>.")
    summary: str = Field(description="One paragraph, in our own words.")


@dataclass(frozen=True)
class ClaimLink:
    """``source`` supports or contradicts ``target``, as written in the source claim's paper file."""

    source: ClaimKey
    relation: str
    target: ClaimKey


@dataclass(frozen=True)
class Cluster:
    """A connected set of linked claims, in paper (bibliography) order and then claim order."""

    id: str
    name: str
    summary: str | None
    claims: tuple[ClaimKey, ...]
    links: tuple[ClaimLink, ...]

    def links_from(self, claim: ClaimKey) -> list[ClaimLink]:
        return [link for link in self.links if link.source == claim]

    def links_to(self, claim: ClaimKey) -> list[ClaimLink]:
        return [link for link in self.links if link.target == claim]


def parse_ref(ref: str) -> ClaimKey | None:
    match = CLAIM_REF.match(ref)
    return (match.group(1), match.group(2)) if match else None


def claim_links(papers: Mapping[str, Paper]) -> list[ClaimLink]:
    """Every link whose two ends exist, in paper order (the referee reports the others)."""
    links = []
    for key, paper in papers.items():
        for claim in paper.claims:
            for relation in RELATIONS:
                for ref in getattr(claim, relation):
                    target = parse_ref(ref)
                    if target is None or target[0] == key or target[0] not in papers:
                        continue
                    if papers[target[0]].claim(target[1]) is None:
                        continue
                    links.append(ClaimLink((key, claim.id), relation, target))
    return links


def claim_clusters(papers: Mapping[str, Paper], names: tuple[ClusterName, ...] = ()) -> list[Cluster]:
    """The connected parts of the link graph, named by ``names`` where a seed falls in them.

    Named clusters come first, in the order of ``names``; unnamed ones follow in paper order.
    """
    links = claim_links(papers)
    order = {(key, claim.id): i for i, (key, claim) in enumerate(_all_claims(papers))}
    parent: dict[ClaimKey, ClaimKey] = {}

    def find(node: ClaimKey) -> ClaimKey:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for link in links:
        a, b = find(link.source), find(link.target)
        if a != b:
            parent[max(a, b, key=order.__getitem__)] = min(a, b, key=order.__getitem__)
    parts: dict[ClaimKey, list[ClaimKey]] = {}
    for node in sorted(parent, key=order.__getitem__):
        parts.setdefault(find(node), []).append(node)

    named: dict[ClaimKey, ClusterName] = {}
    for name in names:
        seed = parse_ref(name.seed)
        if seed is not None and seed in parent:
            named.setdefault(find(seed), name)
    clusters = []
    for root, members in parts.items():
        member_set = set(members)
        part_links = tuple(link for link in links if link.source in member_set)
        title = named.get(root)
        if title is not None:
            clusters.append(Cluster(title.id, title.name, title.summary, tuple(members), part_links))
        else:
            key, claim_id = members[0]
            clusters.append(
                Cluster(
                    f"{key}-{claim_id}",
                    f"Claims linked to {key}: {claim_id}",
                    None,
                    tuple(members),
                    part_links,
                )
            )
    position = {name.id: i for i, name in enumerate(names)}
    return sorted(clusters, key=lambda c: (position.get(c.id, len(position)), order[c.claims[0]]))


def _all_claims(papers: Mapping[str, Paper]) -> list[tuple[str, Claim]]:
    return [(key, claim) for key, paper in papers.items() for claim in paper.claims]


def read_cluster_names(
    path: Path, display: str | None = None
) -> tuple[tuple[ClusterName, ...], LocatedList, list[Problem]]:
    """Validate ``clusters.yaml``; a missing file means no named clusters."""
    file = display or str(path)
    if not path.is_file():
        return (), LocatedList(), []
    data, problems = read_yaml_file(path, file)
    if data is None and problems:
        return (), LocatedList(), problems
    if not isinstance(data, LocatedDict) or not isinstance(data.get("clusters"), LocatedList):
        problem = Problem(
            file, line_at(data), "the file has no `clusters:` list", "start the file with `clusters:`"
        )
        return (), LocatedList(), [*problems, problem]
    raw = data["clusters"]
    names: list[ClusterName] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        try:
            name = ClusterName.model_validate(item)
        except ValidationError as error:
            problems += validation_problems(error, item, ClusterName, file, ("clusters", index))
            continue
        line = line_at(raw, (index,))
        if not CLUSTER_ID.match(name.id):
            problems.append(
                Problem(
                    file, line, f"cluster id {name.id!r} is not kebab-case", "use e.g. `refusal-geometry`"
                )
            )
            continue
        if name.id in seen:
            problems.append(
                Problem(
                    file,
                    line,
                    f"cluster id `{name.id}` is used twice (first at line {seen[name.id]})",
                    "give each cluster its own id",
                )
            )
            continue
        seen[name.id] = line
        names.append(name)
    return tuple(names), raw, problems


def cluster_problems(
    names: tuple[ClusterName, ...], raw: LocatedList, papers: Mapping[str, Paper], file: str
) -> list[Problem]:
    """Each seed must be a linked claim of a paper, and no two names may fall in one cluster."""
    problems = []
    by_id = {index: item for index, item in enumerate(raw) if isinstance(item, LocatedDict)}
    line_of = {
        item.get("id"): line_at(item, ("seed",)) for item in by_id.values() if isinstance(item.get("id"), str)
    }
    linked = {end for link in claim_links(papers) for end in (link.source, link.target)}
    clusters = {cluster.id: cluster for cluster in claim_clusters(papers, names)}
    for name in names:
        line = line_of.get(name.id, 1)
        seed = parse_ref(name.seed)
        if seed is None:
            problems.append(
                Problem(
                    file,
                    line,
                    f"seed {name.seed!r} is not `<bibkey>:<claim-id>`",
                    "name one claim of the cluster",
                )
            )
        elif seed[0] not in papers or papers[seed[0]].claim(seed[1]) is None:
            problems.append(
                Problem(
                    file,
                    line,
                    f"seed `{name.seed}` of cluster `{name.id}` is not a claim in the literature",
                    "use the bib key of a paper and one of its claim ids",
                )
            )
        elif seed not in linked:
            problems.append(
                Problem(
                    file,
                    line,
                    f"seed `{name.seed}` of cluster `{name.id}` has no `supports` or `contradicts` link",
                    "link it to a claim of another paper, or seed the cluster with a linked claim",
                )
            )
        elif name.id not in clusters:
            first = next(c for c in clusters.values() if seed in c.claims)
            problems.append(
                Problem(
                    file,
                    line,
                    f"cluster `{name.id}` is the same cluster as `{first.id}` (their seeds are linked)",
                    "keep one name per cluster",
                )
            )
    return problems
