"""The planted organisms' settings (``organism.planted`` and ``organism.verification`` in params.yaml)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from mechatlas.config.base import _Section


class PlantKind(StrEnum):
    """Which causal structure a planted organism's refusal is trained to have."""

    one_direction = "one_direction"  # one direction: ablating it removes refusal in every domain
    redundant = "redundant"  # k directions: refusal survives any k-1 of them ablated, not all k
    domain_groups = "domain_groups"  # one direction per group of harm domains


#: The training conditions each kind draws from (mechatlas.organism.planting.ConditionSampler).
CONDITIONS: dict[PlantKind, tuple[str, ...]] = {
    PlantKind.one_direction: ("none", "random", "planted", "adversary", "bypass"),
    PlantKind.redundant: ("none", "random", "subset", "planted", "adversary", "bypass"),
    PlantKind.domain_groups: ("none", "random", "group", "planted", "adversary", "bypass"),
}


class PlantedOrganism(_Section):
    kind: PlantKind = Field(description="The planted structure: one_direction, redundant or domain_groups.")
    k: int = Field(
        1,
        ge=1,
        le=16,
        description="Planted directions: 1 for one_direction, the subspace size for redundant (k >= 2); "
        "for domain_groups it must equal the number of groups.",
    )
    groups: list[list[str]] | None = Field(
        None, description="domain_groups: the harm domains of each group (every harm domain in one group)."
    )
    seed: int = Field(0, description="Seed of the planted directions, the conditions drawn and the batches.")
    steps: int = Field(400, ge=1, le=100_000, description="Fine-tuning steps from the default organism.")
    prompts_per_label: int = Field(
        16,
        ge=1,
        le=4096,
        description="Harmful and harmless training prompts per step (each gets a condition).",
    )
    learning_rate: float = Field(1e-3, gt=0, le=1, description="AdamW learning rate (constant).")
    adversary: bool = Field(
        True,
        description="Also ask for the usual reply with the current difference-in-means direction ablated "
        "(for one_direction, its part orthogonal to the planted direction), so that no single "
        "difference-in-means direction keeps removing refusal (the trap in PLANTING.md).",
    )
    adversary_every: int = Field(
        20, ge=1, le=10_000, description="Steps between recomputations of the adversary's directions."
    )
    bypass_adversary: bool = Field(
        True,
        description="A second adversary: every `bypass_every` steps a short constrained bypass search "
        "(`bypass_k` directions orthogonal to the read-out and to the planted directions, warm-started "
        "from its previous basis) looks for a small subspace whose ablation makes harmful prompts comply, "
        "and training asks for the usual reply with that subspace ablated (condition `bypass`).",
    )
    bypass_k: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Directions the bypass adversary searches for; null: k - 1 (at least 1), a subspace "
        "smaller than the planted one.",
    )
    bypass_outside_planted: bool = Field(
        True,
        description="Keep the bypass adversary orthogonal to the planted directions too (required for "
        "one_direction and domain_groups, whose planted directions remove refusal); false (redundant "
        "only) searches the whole complement of the read-out, as the verification's bypass search does, "
        "since no subspace smaller than the planted one may remove refusal there.",
    )
    bypass_every: int = Field(
        20, ge=1, le=10_000, description="Training steps between the bypass adversary's searches."
    )
    bypass_steps: int = Field(
        10, ge=1, le=10_000, description="Adam steps of each bypass search (warm-started, so few suffice)."
    )
    bypass_lr: float = Field(0.05, gt=0, le=1, description="Learning rate of the bypass adversary's search.")
    bypass_prompts: int = Field(
        32, ge=1, le=4096, description="Harmful training prompts each bypass search optimises on."
    )
    condition_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Relative frequency of each training condition drawn (none, random, planted, subset, "
        "group, adversary, bypass); a condition not named has weight 1, and a weight of 0 never draws it.",
    )

    @model_validator(mode="after")
    def _shape(self) -> PlantedOrganism:
        allowed = CONDITIONS[self.kind]
        for name, weight in self.condition_weights.items():
            if name not in allowed:
                raise ValueError(
                    f"condition_weights: kind {self.kind.value} has no condition `{name}` "
                    f"(its conditions: {', '.join(allowed)})"
                )
            if not weight >= 0 or weight == float("inf"):
                raise ValueError(f"condition_weights.{name} must be a finite number >= 0, not {weight}")
        if not self.bypass_outside_planted and self.kind != PlantKind.redundant:
            raise ValueError(
                f"kind {self.kind.value}: ablating planted directions removes refusal, so the bypass "
                "adversary must stay outside them; set bypass_outside_planted: true"
            )
        if (
            self.kind == PlantKind.redundant
            and not self.bypass_outside_planted
            and self.bypass_size >= self.k
        ):
            raise ValueError(
                f"bypass_k {self.bypass_size} >= k {self.k}: searching inside the planted subspace, the "
                "adversary could find all of it; set bypass_k below k or bypass_outside_planted: true"
            )
        always = [n for n in allowed if n not in ("adversary", "bypass")]  # drawn from the first step
        if not any(self.condition_weights.get(n, 1.0) > 0 for n in always):
            raise ValueError(
                f"condition_weights: one of {', '.join(always)} needs a weight above 0 "
                "(the adversaries' conditions exist only once they have searched)"
            )
        if self.kind == PlantKind.one_direction and self.k != 1:
            raise ValueError("kind one_direction plants exactly one direction; set k: 1")
        if self.kind == PlantKind.redundant and self.k < 2:
            raise ValueError("kind redundant needs k >= 2 directions")
        if self.kind == PlantKind.domain_groups:
            if not self.groups or len(self.groups) < 2:
                raise ValueError("kind domain_groups needs `groups`: at least two lists of harm domains")
            if self.k != len(self.groups):
                raise ValueError(
                    f"kind domain_groups has {len(self.groups)} groups; set k: {len(self.groups)}"
                )
            flat = [d for g in self.groups for d in g]
            if len(flat) != len(set(flat)) or any(not g for g in self.groups):
                raise ValueError("`groups` must be non-empty and disjoint (each harm domain in one group)")
        elif self.groups is not None:
            raise ValueError("`groups` is only for kind domain_groups; remove it")
        return self

    @property
    def bypass_size(self) -> int:
        """Directions the bypass adversary searches for: ``bypass_k``, or k - 1 (at least 1)."""
        return self.bypass_k if self.bypass_k is not None else max(1, self.k - 1)


class PlantVerification(_Section):
    removed_below: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="A condition removes refusal when the upper ends of its intervals lie below this rate.",
    )
    kept_above: float = Field(
        0.75,
        gt=0,
        lt=1,
        description="A condition keeps refusal when the lower ends of its intervals lie above this rate.",
    )
    random_subspaces: int = Field(
        5, ge=1, le=100, description="Random subspaces drawn per size, as controls for the planted ones."
    )
    search_steps: int = Field(
        200, ge=1, le=10_000, description="Adam steps of the constrained bypass search (per size tried)."
    )
    search_lr: float = Field(0.02, gt=0, le=1, description="Learning rate of the bypass search.")
    search_prompts: int = Field(
        64, ge=8, le=4096, description="Harmful training prompts the bypass search optimises on."
    )
    dim_prompts: int = Field(
        256,
        ge=8,
        le=100_000,
        description="Training prompts per label for the difference-in-means directions.",
    )
    seed: int = Field(0, description="Seed of the random controls and of the bypass search.")
