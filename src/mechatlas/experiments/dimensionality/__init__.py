"""How many dimensions refusal occupies, per layer and per harm domain, and whether they act causally.

The stages (``stages``: instruction activations, geometry, causal, metrics) each read their inputs, call
the analyses and write their outputs; ``artefacts`` reads what the refusal-direction stage saved and
``groups`` decides which saved prompts play which part. The analyses are pure functions of activations
or of a refusal meter: ``layers`` (spectral and INLP dimensionality per layer), ``domains`` (per-domain
directions, Wollschläger et al., arXiv 2502.17420), ``harmfulness`` (harmfulness versus refusal
directions, Zhao et al., arXiv 2507.11878), ``causal`` (ablation sweeps, the cone check, transfer and
steering, Arditi et al., arXiv 2406.11717) and ``interventions`` (the causal stage's analyses, in
order). ``verdicts`` derives each claim's verdict by the rule its docstring states; ``tables`` builds
the per-layer table; ``figures`` draws every figure (``layer_figures``, ``domain_figures``,
``plotting``).
"""
