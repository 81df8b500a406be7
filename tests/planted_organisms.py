"""Planted organisms: synthetic models whose refusal mechanism is known, for falsifying verdict rules.

A planted organism is a stand-in for a language model at the level the verdict rules read: each prompt has
an activation (one residual-stream vector at the decision layer; optionally a different one per layer for
the geometry, and one at the last instruction token), and a known read-out turns an activation into
first-reply-token logits over a three-token vocabulary (``I`` = refusal, ``Sure``, other). Interventions
are the project's real hooks (``ablation_hooks``, ``addition_hooks``) applied to those activations, and
refusal is judged by the project's real ``RefusalMeter``; geometry is computed by the real estimators; the
causal analyses and verdicts are the real ``causal_analyses`` and ``dimensionality_verdicts``. Only the
transformer is replaced (``PlantedModel.logits``, patched in for ``last_logits``).

Read-outs (``Readout``): ``any_of`` refuses when any planted direction's projection exceeds the threshold
(redundant directions: each is sufficient, none is necessary), ``all_of`` when every one does (a cone: each
is necessary, so ablating any positive combination of them bypasses refusal; the weighted-sum identity
Σ wᵢ (x - (x·ŵ)ŵ)·sᵢ = 0 forces some projection to zero).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pytest
import torch

from mechatlas.config import DimensionalitySettings
from mechatlas.experiments.common import json_safe
from mechatlas.experiments.dimensionality.causal import HeldOutPrompts
from mechatlas.interp.judges import RefusalMeter
from mechatlas.interp.models import LoadedModel

Readout = Literal["any_of", "all_of"]
REFUSAL_ID = 0  # "I"; 1 is "Sure", 2 is any other token
SETTINGS = DimensionalitySettings(
    n_permutations=40, n_bootstrap=40, max_k=8, probe_max_k=6, cone_samples=8, seed=0
)


@dataclass
class Cfg:
    n_layers: int
    d_model: int


@dataclass
class PlantedBridge:
    """What ``LoadedModel.n_layers`` and ``d_model`` read, plus the planted mechanism."""

    cfg: Cfg
    directions: torch.Tensor  # (m, d) unit rows the read-out uses
    threshold: float
    readout: Readout
    # With a compliance read-out, "Sure" has logit 4·(x·sure_direction − threshold) and any other token 0: a
    # model whose compliance also lives in the ablated subspace, so ablation gives neither (damage).
    sure_direction: torch.Tensor | None = None
    activations: dict[str, torch.Tensor] = field(default_factory=dict)  # text -> (d,) at the decision layer

    def logits(self, texts: Sequence[str], hooks: Sequence[Any]) -> torch.Tensor:
        x = torch.stack([self.activations[t] for t in texts]).double()[:, None, :]  # (n, 1, d)
        for _, fn in hooks:  # ablation is idempotent, addition hooks the one layer it names: apply each once
            x = fn(x, None)
        proj = x[:, 0, :] @ self.directions.double().T  # (n, m)
        margin = (
            proj.max(dim=1).values if self.readout == "any_of" else proj.min(dim=1).values
        ) - self.threshold
        if self.sure_direction is None:
            sure, other = torch.zeros_like(margin), torch.full_like(margin, -4.0)
        else:
            sure = 4 * (x[:, 0, :] @ self.sure_direction.double() - self.threshold)
            other = torch.zeros_like(margin)
        logits = torch.stack([4 * margin, sure, other], dim=1)
        return logits.float()


def planted_model(bridge: PlantedBridge) -> LoadedModel:
    return LoadedModel(
        bridge=bridge, tokenizer=None, model_id="planted", revision=None, source_kind="planted"
    )


def patch_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route every first-token forward pass (and greedy generation) through the planted read-out."""

    def last_logits(model: Any, texts: Sequence[str], fwd_hooks: Sequence[Any] = (), *, batch_size: int = 32):
        return model.bridge.logits(list(texts), list(fwd_hooks))

    def greedy_generate(model: Any, texts: list[str], *, fwd_hooks: Any = None, **_: Any) -> list[str]:
        first = model.bridge.logits(texts, list(fwd_hooks or [])).argmax(dim=1)
        return [
            "I cannot help with that." if t == REFUSAL_ID else "Sure: first, a step." for t in first.tolist()
        ]

    for module in (
        "mechatlas.interp.judges",
        "mechatlas.experiments.dimensionality.interventions",
        "mechatlas.experiments.dimensionality.causal",
    ):
        monkeypatch.setattr(f"{module}.last_logits", last_logits, raising=False)
    monkeypatch.setattr("mechatlas.interp.judges.greedy_generate", greedy_generate)


def meter_for(model: LoadedModel, judge: str = "first_token") -> RefusalMeter:
    return RefusalMeter(model, (REFUSAL_ID,), judge, ("I cannot",), max_new_tokens=4, batch_size=64)  # type: ignore[arg-type]


# --- activations -------------------------------------------------------------------------------------


def basis(d: int, n: int, seed: int) -> torch.Tensor:
    """``n`` orthonormal rows in ℝ^d."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, n)))
    return torch.from_numpy(q.T.copy())


@dataclass(frozen=True)
class Organism:
    """Planted activations and the model that reads them.

    ``harmful_means[d]``: the harmful mean of domain d at the decision layer (relative to harmless);
    ``layer_means``: optional per geometry layer override of ``harmful_means`` (the decision layer is the
    last); ``instruction_means``: the harmful mean at the last instruction token (default: the decision
    layer's); ``alarming_post``/``alarming_instruction``: where the alarming controls sit, as a multiple of
    the pooled harmful mean at each position.
    """

    bridge: PlantedBridge
    harmful_means: torch.Tensor  # (n_domains, d)
    layer_means: tuple[torch.Tensor, ...] | None = None  # per geometry layer, (n_domains, d)
    instruction_means: torch.Tensor | None = None
    alarming_post: float = 0.0
    alarming_instruction: float = 0.0
    instruction_is_post: bool = False  # the last instruction token carries the decision layer's activations
    harmless_mean: torch.Tensor | None = None  # default: the origin
    noise: float = 1.0
    per_domain: int = 40
    n_harmless: int = 160
    seed: int = 0


def _draw(rng: np.random.Generator, mean: torch.Tensor, n: int, d: int, noise: float) -> torch.Tensor:
    return mean.double()[None] + noise * torch.from_numpy(rng.standard_normal((n, d)))


def build(org: Organism) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, HeldOutPrompts]]:
    """Geometry (``geometry.json`` shape and tensors, via the real estimators) and the test prompt groups.

    Fit prompts (train/val) and test prompts are separate draws; the model reads the test prompts' own
    activations at the decision layer.
    """
    from mechatlas.experiments.dimensionality.domains import domains_by_layer
    from mechatlas.experiments.dimensionality.harmfulness import harmfulness_by_layer
    from mechatlas.experiments.dimensionality.layers import control_subspaces, dimensionality_per_layer

    rng = np.random.default_rng(org.seed)
    d = org.bridge.cfg.d_model
    n_dom = len(org.harmful_means)
    layers = org.layer_means or (org.harmful_means,)
    inst_means = org.harmful_means if org.instruction_means is None else org.instruction_means
    origin = torch.zeros(d, dtype=torch.float64) if org.harmless_mean is None else org.harmless_mean.double()
    pooled = org.harmful_means.double().mean(0)
    pooled_inst = inst_means.double().mean(0)
    n_al = org.per_domain

    def per_layer(means_by_layer: Sequence[torch.Tensor], n: int) -> tuple[torch.Tensor, list[str]]:
        shared = [torch.from_numpy(rng.standard_normal((n, d))) for _ in range(n_dom)]
        acts = torch.stack(
            [
                torch.cat([m[i].double()[None] + org.noise * shared[i] for i in range(n_dom)])
                for m in means_by_layer
            ],
            dim=1,
        )
        return acts.float(), [f"d{i}" for i in range(n_dom) for _ in range(n)]

    harmful, domains = per_layer(layers, org.per_domain)
    harmless = torch.stack([_draw(rng, origin, org.n_harmless, d, org.noise) for _ in layers], dim=1).float()
    rows, spectral = dimensionality_per_layer(harmful, harmless, SETTINGS)
    tensors: dict[str, torch.Tensor] = {}
    for row in rows:
        row |= {"position": -1, "token": "<post>", "selected": True}
        directions = row.pop("directions", None)
        if directions is not None:
            tensors[f"inlp.layer{row['layer']}"] = directions
    for layer, result in spectral.items():
        tensors[f"spectral.layer{layer}"] = result.fit.patterns[: SETTINGS.max_k]  # type: ignore[union-attr]
    tensors |= control_subspaces(harmful, harmless, sorted(spectral), SETTINGS)
    dom, dom_tensors = domains_by_layer(harmful, domains, harmless, SETTINGS)
    tensors |= dom_tensors
    selected = len(layers) - 1
    inst = {
        "harmful": torch.cat([_draw(rng, inst_means[i], org.per_domain, d, org.noise) for i in range(n_dom)]),
        "harmless": _draw(rng, torch.zeros(d), org.n_harmless, d, org.noise),
        "alarming": _draw(rng, org.alarming_instruction * pooled_inst, n_al, d, org.noise),
    }
    post = {
        "harmful": harmful[:, selected].double(),
        "harmless": harmless[:, selected].double(),
        "alarming": _draw(rng, org.alarming_post * pooled, n_al, d, org.noise),
    }
    n_h, n_b = len(post["harmful"]), len(post["harmless"])
    fit_rows = {"harmful": np.arange(0, n_h, 2), "harmless": np.arange(0, n_b, 2)}
    if org.instruction_is_post:
        inst = dict(post)
    inst = {k: v[:, None].float() for k, v in inst.items()}
    post = {k: v[:, None].float() for k, v in post.items()}
    zhao, zhao_tensors = harmfulness_by_layer(inst, post, fit_rows, np.zeros(n_al, dtype=bool), SETTINGS)
    tensors |= {k.replace("layer0", f"layer{selected}"): v for k, v in zhao_tensors.items()}
    geo = {
        "selected": {"position": -1, "position_index": 0, "token": "<post>", "layer": selected},
        "layers": list(range(len(layers))),
        "dimensionality": rows,
        "domains": dom,
        "harmfulness_vs_refusal": {str(selected): zhao["0"]},
    }

    # Test prompts: new draws; the model reads their decision-layer activations.
    prompts: dict[str, HeldOutPrompts] = {}
    groups = {
        "harmful": [(f"d{i}", org.harmful_means[i]) for i in range(n_dom)],
        "harmless": [("h", origin)],
        "alarming": [("alarming", org.alarming_post * pooled)],
    }
    for group, parts in groups.items():
        ids, doms, framings = [], [], []
        for domain, mean in parts:
            n = org.per_domain if group != "harmless" else org.n_harmless
            acts = _draw(rng, mean, n, d, org.noise)
            for j in range(n):
                text = f"{group}-{domain}-{j}"
                org.bridge.activations[text] = acts[j].float()
                ids.append(text)
                doms.append(domain)
                framings.append(f"framing-{j % 8}")  # 8 clusters per domain, as organism framings are
        prompts[group] = HeldOutPrompts(tuple(ids), tuple(ids), tuple(doms), tuple(framings))
    return json.loads(json.dumps(json_safe(geo))), tensors, prompts


def run_study(org: Organism) -> tuple[dict[str, Any], dict[str, Any]]:
    """The real causal analyses on a planted organism: ``(geometry, causal)`` as the stages write them."""
    from mechatlas.experiments.dimensionality.interventions import causal_analyses

    geo, tensors, prompts = build(org)
    meter = meter_for(planted_model(org.bridge))
    causal, _ = causal_analyses(
        meter, prompts, geo, tensors, settings=SETTINGS, coefficient=1.0, batch_size=64
    )
    return geo, json.loads(json.dumps(json_safe(causal)))
