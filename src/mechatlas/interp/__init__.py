"""The reusable interpretability library: pure tensors and model I/O, no configuration, no paths.

Modules in data-flow order: ``models`` (load through TransformerBridge, chat prompts, the one encoder,
generation), ``hooks`` (hook names and sites), ``activations`` (post-instruction activations and their
on-disk store), ``directions`` (means, differences, bases, random controls), ``interventions``
(ablation, addition, weight orthogonalization), ``scores`` (refusal score, KL), ``judges`` (the Judge
protocol and its judges), ``candidates`` (scoring candidate directions), ``evaluation`` (conditions,
generation under hooks, capability cost), ``memory`` (batch sizes from free memory) and ``geometry``
(dimensionality estimators and planted data).

Nothing here reads ``params.yaml`` or knows where artefacts live: experiments pass those in.
"""
