"""The ``dimensionality:`` section of params.yaml: the per-layer, per-domain and causal dimensionality study."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from mechatlas.config.base import SEED_LIMIT, _Section


class DimensionalityPositions(StrEnum):
    selected = "selected"
    all = "all"


class CausalJudge(StrEnum):
    first_token = "first_token"
    substring = "substring"
    classifier = "classifier"  # the refusal_direction.judge classifier, reading greedy replies


class OptimisationSettings(_Section):
    """The optimised-directions stage (``mechatlas.experiments.dimensionality.optimised``)."""

    train_prompts: int = Field(
        64,
        ge=4,
        le=100_000,
        description="Train prompts per label the optimisers fit on (harmful ones the model refuses, harmless "
        "ones it answers), spread over domains.",
    )
    target_tokens: int = Field(
        8,
        ge=1,
        le=256,
        description="Greedy tokens of each target reply (the paper's code uses 30): compliance under the "
        "difference-in-means ablation, refusal under its addition, and the model's own replies.",
    )
    batch_size: int = Field(8, ge=1, le=4096, description="Prompts per optimisation step and loss.")
    steps: int = Field(60, ge=1, le=100_000, description="Adam steps per optimised direction or basis.")
    lr: float = Field(0.01, gt=0, le=1, description="Adam learning rate (the paper's code: 1e-2).")
    ablation_weight: float = Field(1.0, ge=0, description="Weight of the ablation (bypass) loss.")
    addition_weight: float = Field(0.2, ge=0, description="Weight of the addition (induce) loss.")
    retain_weight: float = Field(1.0, ge=0, description="Weight of the retain (KL) loss.")
    rdo_seeds: int = Field(
        2,
        ge=1,
        le=100,
        description="Optimisation seeds for RDO; the cosine with the difference in means "
        "is reported over them.",
    )
    max_m: int = Field(
        3, ge=1, le=64, description="Largest cone and bypass-subspace dimension optimised (m = 1 .. max_m)."
    )
    eval_samples: int = Field(
        4, ge=1, le=1000, description="Sampled cone directions evaluated per cone, beside its basis vectors."
    )
    constrained_blocks: int | None = Field(
        None,
        ge=1,
        description="The constrained bypass search ablates only in blocks 0 .. this − 1; null: the "
        "selected direction's layer (the stream entering it, where the direction was read, is then free of "
        "the subspace, and later blocks may write it again).",
    )
    spectral_k: int = Field(
        4,
        ge=1,
        le=4096,
        description="Spectral directions at the selected layer in the multi-direction table.",
    )
    seed: int = Field(
        0, ge=0, lt=SEED_LIMIT, description="Seed of prompt caps, starts, samples and controls."
    )


class DimensionalitySettings(_Section):
    positions: DimensionalityPositions = Field(
        DimensionalityPositions.selected,
        description="Estimate dimensionality at the refusal direction's selected post-instruction position, "
        "or at every post-instruction position (estimators only; interventions use the selected one).",
    )
    max_k: int = Field(
        32,
        ge=1,
        le=4096,
        description="Largest subspace dimension the causal sweep ablates (k = 1, 2, 3, 4, 6, 8, 12, ... max_k).",
    )
    refusal_threshold: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="Harmful-prompt refusal rate below which an ablated subspace counts as removing refusal.",
    )
    induce_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Harmless-prompt refusal rate at or above which an added direction induces refusal.",
    )
    n_permutations: int = Field(
        100,
        ge=20,
        le=100_000,
        description="Label permutations for the spectral null (parallel analysis) and the transfer gap's null.",
    )
    n_bootstrap: int = Field(
        50, ge=10, le=100_000, description="Bootstrap resamples over prompts for every CI of this stage."
    )
    spectral_max_rank: int = Field(
        256,
        ge=1,
        le=65_536,
        description="Most principal components kept when whitening (also capped at n/2).",
    )
    spectral_ridge: float = Field(
        1e-3, ge=0, le=1, description="Whitening ridge, as a fraction of the mean pooled eigenvalue."
    )
    probe_max_k: int = Field(16, ge=1, le=1024, description="Most directions INLP removes before it stops.")
    probe_l2: float = Field(
        0.1, gt=0, le=100, description="L2 penalty of the INLP logistic-regression probes."
    )
    probe_chance_margin: float = Field(
        0.1,
        ge=0,
        lt=0.5,
        description="Held-out balanced accuracy within this of 0.5 counts as chance for INLP (see geometry.inlp).",
    )
    probe_holdout: float = Field(
        0.3, gt=0, lt=1, description="Share of prompts INLP holds out to test each probe."
    )
    domain_subspace_rank: int = Field(
        3, ge=1, le=64, description="Spectral directions per harm domain when comparing domain subspaces."
    )
    n_causal_prompts: int | None = Field(
        160,
        ge=8,
        description="Harmful and harmless test prompts per label for the interventions, spread over domains; "
        "null uses them all.",
    )
    cone_samples: int = Field(
        8,
        ge=1,
        le=10_000,
        description="Random positive combinations of domain directions added in the cone check.",
    )
    judge: CausalJudge = Field(
        CausalJudge.first_token,
        description="How a reply counts as a refusal in the interventions: its greedy first token is a refusal "
        "token (one forward pass), or a generated reply contains a refusal substring.",
    )
    max_new_tokens: int = Field(
        64,
        ge=1,
        le=2048,
        description="Greedy tokens generated for the substring judge and its agreement check.",
    )
    panel_judges: list[CausalJudge] = Field(
        default_factory=lambda: [CausalJudge.first_token, CausalJudge.substring],
        description="Every judge the verdicts are also derived under: the interventions run once per judge, "
        "and a verdict that differs between them is flagged. Must include `judge` (the verdicts' own); "
        "`[first_token]` with `judge: first_token` runs no panel; `classifier` reads greedy replies with the "
        "classifier `refusal_direction.judge` names.",
    )
    distinct_cosine: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="Verdict rule: two directions whose cosine CI lies below this are distinct.",
    )
    transfer_gap: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Verdict rule: how much more an own-domain ablation must cut refusal than other domains' do.",
    )
    null_cones: int = Field(
        8,
        ge=1,
        le=1000,
        description="Random pseudo-domain partitions (of the real domains' sizes) for the null cone and the "
        "domain-transfer null.",
    )
    cone_share: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Verdict rule: share of sampled cone directions that must bypass (ablated) and induce (added).",
    )
    max_harmless_kl: float = Field(
        0.1,
        gt=0,
        description="Damage gate: an ablation removes refusal only if the mean first-token KL it causes on "
        "harmless prompts is at most this (nats; the paper's selection bound).",
    )
    seed: int = Field(
        0,
        ge=0,
        lt=SEED_LIMIT,
        description="Seed of the permutations, bootstraps, random controls and prompt caps.",
    )
    optimisation: OptimisationSettings = Field(
        default_factory=OptimisationSettings,
        description="Gradient-optimised directions: RDO, refusal cones, the smallest bypassing subspace.",
    )

    @model_validator(mode="after")
    def _panel_includes_the_verdict_judge(self) -> DimensionalitySettings:
        if self.judge not in self.panel_judges:
            raise ValueError(
                f"panel_judges {[j.value for j in self.panel_judges]} leaves out judge `{self.judge.value}`, "
                "the one the verdicts are derived under; add it"
            )
        if len(set(self.panel_judges)) != len(self.panel_judges):
            raise ValueError("panel_judges names a judge twice; list each once")
        return self
