"""The taxonomy: ``literature/taxonomy.yaml``, the tree of mechinterp methods and concepts.

Each node names its ``parent`` (``null`` at the root), so the file is a flat list that is easy to
review in a diff, and the tree is rebuilt here. A node says what kind of method it is, at which
granularity it looks at a model, whether it works bottom-up (from components to behaviour) or
top-down (from a behaviour or concept to the representations behind it), and cites key papers.

``read_taxonomy`` validates the file and the shape of the tree (unique ids, no orphans, no cycles)
and returns every problem at once; cross-file checks (do the references exist?) live in ``check``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mechatlas.literature.located import LocatedDict, LocatedList, line_at
from mechatlas.literature.problems import Problem
from mechatlas.literature.schema import read_yaml_file, validation_problems

NODE_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class Kind(StrEnum):
    """What a node is: a concept, or a family of methods by how it gets its evidence."""

    concept = "concept"
    observational = "observational"  # reads activations or weights, changes nothing
    interventional = "interventional"  # changes activations or weights at inference and watches the effect
    dictionary_learning = "dictionary-learning"  # learns an overcomplete, sparse basis of features
    circuit_discovery = "circuit-discovery"  # finds the subgraph of components behind a behaviour
    automated_interpretation = "automated-interpretation"  # models explain models, in natural language
    training_time = "training-time"  # uses interpretability signals while training


class Granularity(StrEnum):
    """The unit of analysis."""

    neuron = "neuron"
    direction = "direction"
    subspace = "subspace"
    feature = "feature"
    circuit = "circuit"
    model = "model"


class Approach(StrEnum):
    """Bottom-up starts from components; top-down starts from a behaviour or concept; mixed does both."""

    bottom_up = "bottom-up"
    top_down = "top-down"
    mixed = "mixed"  # a node whose children go both ways, such as the root of the survey


class TaxonomyNode(BaseModel):
    """One method or concept in the tree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Stable kebab-case id that papers and results refer to.")
    name: str = Field(description="Human-readable name.")
    parent: str | None = Field(description="Id of the parent node; null for a root.")
    kind: Kind = Field(description="Concept, or the family of method.")
    granularity: Granularity = Field(description="The unit of analysis.")
    approach: Approach = Field(description="Bottom-up or top-down.")
    summary: str = Field(description="One paragraph, in our own words.")
    references: tuple[str, ...] = Field(description="Bib keys of the key papers, in reading order.")


@dataclass(frozen=True)
class Taxonomy:
    """The validated nodes, in file order, with ``line`` giving where each starts in the file."""

    nodes: dict[str, TaxonomyNode]
    lines: dict[str, int]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, node_id: str) -> TaxonomyNode:
        return self.nodes[node_id]

    def roots(self) -> list[TaxonomyNode]:
        return [node for node in self.nodes.values() if node.parent is None]

    def children(self, node_id: str) -> list[TaxonomyNode]:
        return [node for node in self.nodes.values() if node.parent == node_id]

    def ancestors(self, node_id: str) -> list[TaxonomyNode]:
        """Parent, grandparent, ... up to the root (stops early if the chain is broken)."""
        chain: list[TaxonomyNode] = []
        seen = {node_id}
        parent = self.nodes[node_id].parent
        while parent is not None and parent in self.nodes and parent not in seen:
            seen.add(parent)
            chain.append(self.nodes[parent])
            parent = self.nodes[parent].parent
        return chain

    def descendants(self, node_id: str) -> list[TaxonomyNode]:
        """Every node below ``node_id``, depth first in file order."""
        found: list[TaxonomyNode] = []
        stack = list(reversed(self.children(node_id)))
        seen = {node_id}
        while stack:
            node = stack.pop()
            if node.id in seen:
                continue
            seen.add(node.id)
            found.append(node)
            stack.extend(reversed(self.children(node.id)))
        return found


def read_taxonomy(
    path: Path, display: str | None = None
) -> tuple[Taxonomy, dict[str, LocatedDict], list[Problem]]:
    """Validate ``taxonomy.yaml``: every node's fields, then the tree.

    Returns the nodes that passed, the raw (line-aware) mapping of every declared node by id (valid or
    not), and all problems found.
    """
    file = display or str(path)
    if not path.is_file():
        return Taxonomy({}, {}), {}, [Problem(file, 1, "the taxonomy file is missing", "create it")]
    data, problems = read_yaml_file(path, file)
    if data is None and problems:
        return Taxonomy({}, {}), {}, problems
    if not isinstance(data, LocatedDict) or not isinstance(data.get("nodes"), LocatedList):
        problem = Problem(
            file, line_at(data), "the taxonomy has no `nodes:` list", "start the file with `nodes:`"
        )
        return Taxonomy({}, {}), {}, [*problems, problem]

    nodes: dict[str, TaxonomyNode] = {}
    raw_by_id: dict[str, LocatedDict] = {}
    for index, raw in enumerate(data["nodes"]):
        node, node_problems = _read_node(raw, index, data["nodes"].item_lines[index], file)
        problems.extend(node_problems)
        declared = raw.get("id") if isinstance(raw, LocatedDict) else None
        if not isinstance(declared, str):
            continue
        if declared in raw_by_id:
            problems.append(
                Problem(
                    file,
                    line_at(raw, ("id",)),
                    f"node id `{declared}` is used twice (first at line {raw_by_id[declared].line})",
                    "give each node its own id, or merge the two nodes",
                )
            )
            continue
        # A node with an invalid field still counts as declared, so its children are not called orphans.
        raw_by_id[declared] = raw
        if node is not None:
            nodes[node.id] = node
    taxonomy = Taxonomy(nodes, {node_id: raw.line for node_id, raw in raw_by_id.items()})
    problems.extend(tree_problems(raw_by_id, file))
    return taxonomy, raw_by_id, problems


def _read_node(raw: Any, index: int, line: int, file: str) -> tuple[TaxonomyNode | None, list[Problem]]:
    if not isinstance(raw, LocatedDict):
        return None, [
            Problem(file, line, f"`nodes.{index}` is not a mapping", "write the node as `- id: ...`")
        ]
    try:
        node = TaxonomyNode.model_validate(dict(raw))
    except ValidationError as error:
        return None, validation_problems(error, raw, TaxonomyNode, file, prefix=("nodes", index))
    problems = []
    if not NODE_ID.match(node.id):
        problems.append(
            Problem(
                file,
                line_at(raw, ("id",)),
                f"node id {node.id!r} is not kebab-case",
                "use lowercase words joined by hyphens, e.g. `directional-ablation`",
            )
        )
    if not node.summary.strip() or "\n\n" in node.summary.strip() or len(node.summary.split()) < 12:
        problems.append(
            Problem(
                file,
                line_at(raw, ("summary",)),
                f"node `{node.id}` needs a one-paragraph summary",
                "write one paragraph (at least a couple of sentences, no blank lines) in your own words",
            )
        )
    if not node.references:
        problems.append(
            Problem(
                file,
                line_at(raw, ("references",)),
                f"node `{node.id}` cites no papers",
                "list the bib keys of its key papers under `references`",
            )
        )
    return node, problems


def tree_problems(raw_by_id: dict[str, LocatedDict], file: str) -> list[Problem]:
    """Orphans (a parent that is not a node) and cycles (a chain of parents that loops).

    Works on the raw nodes, so that a node with some other invalid field still takes part.
    """
    parents = {node_id: raw.get("parent") for node_id, raw in raw_by_id.items()}
    problems = []
    for node_id, parent in parents.items():
        if isinstance(parent, str) and parent not in raw_by_id:
            problems.append(
                Problem(
                    file,
                    line_at(raw_by_id[node_id], ("parent",)),
                    f"node `{node_id}` has parent `{parent}`, which is not a node (an orphan)",
                    "point `parent` at an existing node id, or add that node",
                )
            )
    for cycle in find_cycles(parents):
        first = min(cycle, key=lambda node_id: raw_by_id[node_id].line)
        start = cycle.index(first)
        ordered = [*cycle[start:], *cycle[:start], first]
        problems.append(
            Problem(
                file,
                line_at(raw_by_id[first], ("parent",)),
                f"the taxonomy has a cycle: {' → '.join(ordered)}",
                "make one of these nodes' `parent` point outside the cycle, so the chain ends at a root",
            )
        )
    return problems


def find_cycles(parents: dict[str, Any]) -> list[list[str]]:
    """Each loop in the parent links, once, as the list of node ids child → parent → ..."""
    cycles: list[list[str]] = []
    done: set[str] = set()
    for start in parents:
        path: list[str] = []
        position: dict[str, int] = {}
        current = start
        while isinstance(current, str) and current in parents and current not in done:
            if current in position:
                cycles.append(path[position[current] :])
                break
            position[current] = len(path)
            path.append(current)
            current = parents[current]
        done.update(path)
    return cycles
