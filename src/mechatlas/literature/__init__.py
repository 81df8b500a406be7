"""The literature knowledge base: a bibliography, a taxonomy of methods, and one file per paper.

``literature/`` holds ``references.bib`` (BibTeX, read with pybtex), ``taxonomy.yaml`` (the tree of
methods and concepts) and ``papers/<bibkey>.yaml`` (methods, models, tags, claims, replications).
Results point into it: each ``data/results/<experiment>/<model>/metrics.json`` names the paper
claims it replicates and the methods it uses. ``mechatlas lit check`` is the referee for all of it.

Reading it, for the site generator::

    from mechatlas.literature import load_library, replications_from_results
    library = load_library("literature")              # raises LiteratureError if the check fails
    paper = library.paper("arditi2024refusal")         # methods, models, tags, claims, replications
    node = library.node("directional-ablation")        # name, parent, summary, kind, references
    library.taxonomy.children("directional-ablation")  # the tree: roots(), children(), ancestors()
    library.format_citation("arditi2024refusal")       # plain-text reference
    library.bibtex_source("arditi2024refusal")         # the entry as written in references.bib
    replications_from_results("data/results")          # {bibkey: [ResultReplication, ...]}
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from mechatlas.literature.add import AddedPaper, add_papers, entry_from_metadata
from mechatlas.literature.bib import BibEntry, Bibliography, read_bibliography
from mechatlas.literature.check import BIB_NAME, check_library, inspect_library, load_library
from mechatlas.literature.library import Library
from mechatlas.literature.papers import Claim, Paper, Replication
from mechatlas.literature.problems import Problem
from mechatlas.literature.results import ResultReplication, replications_from_results
from mechatlas.literature.taxonomy import Approach, Granularity, Kind, Taxonomy, TaxonomyNode
from mechatlas.records import Verdict

__all__ = [
    "AddedPaper",
    "Approach",
    "BibEntry",
    "Bibliography",
    "Claim",
    "Granularity",
    "Kind",
    "Library",
    "Paper",
    "Problem",
    "Replication",
    "ResultReplication",
    "Taxonomy",
    "TaxonomyNode",
    "Verdict",
    "add_papers",
    "bibtex_source",
    "check_library",
    "entry_from_metadata",
    "format_citation",
    "inspect_library",
    "load_library",
    "replications_from_results",
]


def format_citation(key: str, root: str | Path = "literature") -> str:
    """A plain-text reference for bib key ``key`` (pybtex ``plain`` style, with DOI or arXiv id)."""
    return _bibliography(root).format_citation(key)


def bibtex_source(key: str, root: str | Path = "literature") -> str:
    """The BibTeX entry for ``key`` exactly as written in ``references.bib``."""
    return _bibliography(root).bibtex_source(key)


def _bibliography(root: str | Path) -> Bibliography:
    path = Path(root) / BIB_NAME
    # Keyed on the modification time, so an edited file is read again (the site builds many pages).
    return _read_cached(path.resolve(), path.stat().st_mtime_ns if path.exists() else 0)


@lru_cache(maxsize=4)
def _read_cached(path: Path, mtime_ns: int) -> Bibliography:
    return read_bibliography(path)[0]
