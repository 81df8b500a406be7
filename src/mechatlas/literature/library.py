"""The literature library as one read-only object: bibliography, taxonomy and papers together.

This is what the site generator reads. ``load_library`` (in ``check``) builds it and refuses a library
the referee would reject, so everything reachable from a ``Library`` resolves: every paper has a bib
entry, every method id is a taxonomy node, every taxonomy reference is a paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mechatlas.literature.bib import Bibliography
from mechatlas.literature.clusters import Cluster, ClusterName, claim_clusters
from mechatlas.literature.papers import Claim, Paper
from mechatlas.literature.taxonomy import Taxonomy, TaxonomyNode


@dataclass(frozen=True)
class Library:
    """Papers by bib key (file order of references.bib), the taxonomy, and the bibliography."""

    root: Path
    bibliography: Bibliography
    taxonomy: Taxonomy
    papers: dict[str, Paper]
    cluster_names: tuple[ClusterName, ...] = ()

    def paper(self, key: str) -> Paper:
        return self.papers[key]

    def node(self, node_id: str) -> TaxonomyNode:
        return self.taxonomy.node(node_id)

    def papers_using(self, method_id: str) -> list[Paper]:
        """Papers that list ``method_id`` among their methods, in bibliography order."""
        return [paper for paper in self.papers.values() if method_id in paper.methods]

    def clusters(self) -> list[Cluster]:
        """Claims of different papers joined by ``supports``/``contradicts``, one cluster per connected part."""
        return claim_clusters(self.papers, self.cluster_names)

    def testable_claims(self) -> list[tuple[str, Claim]]:
        """Every claim that names the methods a result of ours could test it with, in paper order."""
        return [
            (key, claim) for key, paper in self.papers.items() for claim in paper.claims if claim.testable_by
        ]

    def format_citation(self, key: str) -> str:
        """A plain-text reference (pybtex ``plain`` style) with the DOI or arXiv id."""
        return self.bibliography.format_citation(key)

    def bibtex_source(self, key: str) -> str:
        """The BibTeX entry exactly as written in references.bib."""
        return self.bibliography.bibtex_source(key)
