"""The refusal-direction experiment: a replication of Arditi et al. 2024, "Refusal in Language Models
Is Mediated by a Single Direction" (arXiv 2406.11717).

``stages`` holds the file-level stages (activations, selection, orthogonalization, evaluation) that
Snakemake and ``mechatlas refusal`` call; ``activations``, ``selection``, ``summaries`` and
``verdicts`` hold the analysis each stage calls, and ``figures`` the plots of what they wrote.
"""
