# The dimensionality experiment: how many dimensions refusal occupies, layer by layer and per harm domain. Reuses the
# refusal-direction stage (its saved activations and selected direction) instead of recomputing them:
# instruction-token activations -> geometry (activations only) -> causal (interventions) -> metrics
# -> figures. Logic lives in mechatlas.dimensionality; each rule depends only on the settings it reads,
# so changing a dimensionality setting reruns only these jobs, and a verdict threshold only the last two.
# Params are the validated settings (pydantic dumps, fixed key order), so reordering keys in params.yaml
# changes nothing.

DIMENSIONALITY = "data/results/dimensionality/{model}"
DIMENSIONALITY_FIGURES = "reports/figures/dimensionality/{model}"
DIMENSIONALITY_FIGURE_NAMES = registry.get("dimensionality").figures  # mechatlas.experiments.registry


rule dimensionality_instruction_activations:
    input:
        model=model_checkpoint,
        activations="data/activations/{model}",
    output:
        activations=f"{DIMENSIONALITY}/instruction_token.npy",
        info=f"{DIMENSIONALITY}/instruction_token.json",
    params:
        model=lambda wildcards: PARAMS.models[wildcards.model].model_dump(mode="json"),
        run=PARAMS.run.model_dump(mode="json"),
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    log:
        f"{LOGS}/dimensionality/{{model}}/instruction_activations.log",
    threads: 1  # on CPU the organism's forward passes are small: a second thread gains little and can stall
    script:
        "../scripts/dimensionality_instruction_activations.py"


rule dimensionality_geometry:
    input:
        activations="data/activations/{model}",
        prompts=model_prompts,  # the prompts' clusters (organism framings): the unit the intervals resample
        direction=f"{REFUSAL}/direction.safetensors",
        info=f"{REFUSAL}/direction.json",
        instruction=f"{DIMENSIONALITY}/instruction_token.npy",
    output:
        geometry=f"{DIMENSIONALITY}/geometry.json",
        subspaces=f"{DIMENSIONALITY}/subspaces.safetensors",
    params:
        settings=dimensionality_settings(
            "positions",
            "max_k",
            "n_permutations",
            "n_bootstrap",
            "spectral_max_rank",
            "spectral_ridge",
            "probe_max_k",
            "probe_l2",
            "probe_chance_margin",
            "probe_holdout",
            "domain_subspace_rank",
            "seed",
        ),
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    log:
        f"{LOGS}/dimensionality/{{model}}/geometry.log",
    threads: 1
    script:
        "../scripts/dimensionality_geometry.py"


rule dimensionality_causal:
    input:
        model=model_checkpoint,
        prompts=model_prompts,
        geometry=f"{DIMENSIONALITY}/geometry.json",
        subspaces=f"{DIMENSIONALITY}/subspaces.safetensors",
    output:
        summary=f"{DIMENSIONALITY}/causal.json",
        rows=f"{DIMENSIONALITY}/causal.parquet",
    params:
        model=lambda wildcards: PARAMS.models[wildcards.model].model_dump(mode="json"),
        run=PARAMS.run.model_dump(mode="json"),
        settings=dimensionality_settings(
            "max_k",
            "refusal_threshold",
            "n_bootstrap",
            "n_permutations",
            "n_causal_prompts",
            "cone_samples",
            "judge",
            "max_new_tokens",
            "seed",
        ),
        refusal=refusal_settings(
            "refusal_tokens", "refusal_substrings", "addition_coefficient", "scoring_batch_size"
        ),
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    log:
        f"{LOGS}/dimensionality/{{model}}/causal.log",
    threads: 1
    script:
        "../scripts/dimensionality_causal.py"


# Gradient-optimised directions (RDO, refusal cones, the smallest bypassing subspace, multi-direction
# ablation): the model, the selected direction and the geometry stage's subspaces in, one record out.
rule dimensionality_optimised:
    input:
        model=model_checkpoint,
        prompts=model_prompts,
        direction=f"{REFUSAL}/direction.safetensors",
        info=f"{REFUSAL}/direction.json",
        subspaces=f"{DIMENSIONALITY}/subspaces.safetensors",
    output:
        summary=f"{DIMENSIONALITY}/optimised.json",
        directions=f"{DIMENSIONALITY}/optimised.safetensors",
    params:
        model=lambda wildcards: PARAMS.models[wildcards.model].model_dump(mode="json"),
        run=PARAMS.run.model_dump(mode="json"),
        settings=dimensionality_settings(
            "optimisation",
            "refusal_threshold",
            "induce_threshold",
            "cone_share",
            "n_causal_prompts",
            "judge",
            "max_new_tokens",
            "seed",
        ),
        refusal=refusal_settings(
            "refusal_tokens", "refusal_substrings", "addition_coefficient", "scoring_batch_size"
        ),
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    log:
        f"{LOGS}/dimensionality/{{model}}/optimised.log",
    threads: 1
    script:
        "../scripts/dimensionality_optimised.py"


rule dimensionality_metrics:
    input:
        geometry=f"{DIMENSIONALITY}/geometry.json",
        causal=f"{DIMENSIONALITY}/causal.json",
        optimised=f"{DIMENSIONALITY}/optimised.json",
    output:
        metrics=f"{DIMENSIONALITY}/metrics.json",
        table=f"{DIMENSIONALITY}/per_layer.csv",
        domains=f"{DIMENSIONALITY}/domains.csv",
    params:
        model=lambda wildcards: PARAMS.models[wildcards.model].model_dump(mode="json"),
        settings=dimensionality_settings(*PARAMS.dimensionality.model_fields),  # all are recorded in metrics.json
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    log:
        f"{LOGS}/dimensionality/{{model}}/metrics.log",
    script:
        "../scripts/dimensionality_metrics.py"


# Cheap plotting, separate from the slow stages: changing a figure reruns only this rule.
rule dimensionality_figures:
    input:
        geometry=f"{DIMENSIONALITY}/geometry.json",
        causal=f"{DIMENSIONALITY}/causal.json",
        metrics=f"{DIMENSIONALITY}/metrics.json",
    output:
        [f"{DIMENSIONALITY_FIGURES}/{name}{FIGURE_SUFFIX}" for name in DIMENSIONALITY_FIGURE_NAMES],
        readme=f"{DIMENSIONALITY_FIGURES}/README.md",
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    log:
        f"{LOGS}/dimensionality/{{model}}/figures.log",
    script:
        "../scripts/dimensionality_figures.py"
