"""mechatlas: a living, reproducible survey of mechanistic interpretability.

The library holds all computation, one module per concept, in data-flow order:
``config`` -> ``models`` -> ``prompts`` -> ``organism`` -> ``activations`` -> ``directions``
-> ``interventions`` -> ``evaluation`` -> ``geometry``; then ``literature`` and ``site``.
Snakemake rules and the ``mechatlas`` CLI are thin wrappers over these functions.
"""

__version__ = "0.1.0"
