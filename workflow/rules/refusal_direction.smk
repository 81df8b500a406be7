# Arditi et al. 2024, "Refusal in Language Models Is Mediated by a Single Direction" (arXiv 2406.11717):
# activations -> candidate scores and the selected direction -> orthogonalized checkpoint -> evaluation
# -> figures. One chain per model in params.yaml; logic lives in mechatlas.refusal_direction.

REFUSAL = "data/results/refusal_direction/{model}"
REFUSAL_FIGURES = "reports/figures/refusal_direction/{model}"


rule refusal_activations:
    input:
        model=model_checkpoint,
        prompts=model_prompts,
    output:
        directory("data/activations/{model}"),
    params:
        model=lambda wildcards: section("models", wildcards.model),
        run=section("run"),
        settings=refusal_settings("refusal_tokens", "n_train", "filter_by_refusal_score", "seed"),
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    log:
        f"{LOGS}/refusal_direction/{{model}}/activations.log",
    threads: 2
    script:
        "../scripts/refusal_activations.py"


rule refusal_select:
    input:
        model=model_checkpoint,
        activations="data/activations/{model}",
    output:
        candidates=f"{REFUSAL}/candidates.parquet",
        direction=f"{REFUSAL}/direction.safetensors",
        info=f"{REFUSAL}/direction.json",
    params:
        model=lambda wildcards: section("models", wildcards.model),
        run=section("run"),
        settings=refusal_settings(
            "refusal_tokens",
            "n_val",
            "seed",
            "max_layer_fraction",
            "max_kl",
            "min_induce",
            "addition_coefficient",
            "scoring_batch_size",
        ),
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    log:
        f"{LOGS}/refusal_direction/{{model}}/select.log",
    threads: 2
    script:
        "../scripts/refusal_select.py"


rule refusal_orthogonalize:
    input:
        model=model_checkpoint,
        activations="data/activations/{model}",
        direction=f"{REFUSAL}/direction.safetensors",
        info=f"{REFUSAL}/direction.json",
    output:
        checkpoint=directory("data/models/refusal_orthogonalized/{model}"),
        report=f"{REFUSAL}/orthogonalization.json",
    params:
        model=lambda wildcards: section("models", wildcards.model),
        run=section("run"),
        settings=refusal_settings("orthogonalization_tolerance"),
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    log:
        f"{LOGS}/refusal_direction/{{model}}/orthogonalize.log",
    threads: 2
    script:
        "../scripts/refusal_orthogonalize.py"


rule refusal_evaluate:
    input:
        model=model_checkpoint,
        prompts=model_prompts,
        direction=f"{REFUSAL}/direction.safetensors",
        info=f"{REFUSAL}/direction.json",
        orthogonalization=f"{REFUSAL}/orthogonalization.json",
    output:
        evaluations=f"{REFUSAL}/evaluations.parquet",
        metrics=f"{REFUSAL}/metrics.json",
    params:
        model=lambda wildcards: section("models", wildcards.model),
        run=section("run"),
        settings=section("refusal_direction"),
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    log:
        f"{LOGS}/refusal_direction/{{model}}/evaluate.log",
    threads: 2
    script:
        "../scripts/refusal_evaluate.py"


# Cheap plotting, separate from the slow stages: changing a figure reruns only this rule.
rule refusal_figures:
    input:
        candidates=f"{REFUSAL}/candidates.parquet",
        metrics=f"{REFUSAL}/metrics.json",
    output:
        [f"{REFUSAL_FIGURES}/{name}{FIGURE_SUFFIX}" for name in registry.get("refusal_direction").figures],
        f"{REFUSAL_FIGURES}/README.md",
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    log:
        f"{LOGS}/refusal_direction/{{model}}/figures.log",
    script:
        "../scripts/refusal_figures.py"
