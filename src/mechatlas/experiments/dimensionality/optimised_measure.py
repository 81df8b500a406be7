"""What the optimised-directions stage fits on and how it measures a direction or a subspace.

``train_set`` builds the teacher-forced batches from train prompts (the model's own greedy replies as
targets, as in the paper's code); ``Measure`` measures on the causal stage's held-out test prompts with
its judge, through the TransformerLens hooks every other stage uses (``tests/test_planting.py`` checks
that the differentiable torch hooks the optimisers train through compute the same ablation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mechatlas.config import Params
from mechatlas.interp.hooks import Hook
from mechatlas.interp.optimised import Batches, Constraint, Weights, batches_of
from mechatlas.stats import mean_over_unit, rate_over_unit


@dataclass
class Measure:
    name: str  # the model's key in params
    selected: Tensor  # the selected difference-in-means direction (unnormalised)
    model: Any  # LoadedModel
    meter: Any  # RefusalMeter
    prompts: dict[str, Any]  # HeldOutPrompts per group: harmful, harmless, alarming
    layer: int
    alpha: float
    readout: Tensor
    refusal_ids: tuple[int, ...]
    comply_id: int
    harmless_logits: Tensor
    harmless_replies: list[str]
    harmful_replies: list[str]
    settings: Any  # DimensionalitySettings
    batch_size: int

    @property
    def hf(self) -> Any:
        return self.model.bridge.original_model

    def counts(self) -> dict[str, int]:
        return {f"test_{group}": len(p.texts) for group, p in self.prompts.items()}

    def judge_description(self) -> str:
        def shown(ids: Sequence[int]) -> str:
            return ", ".join(repr(self.model.tokenizer.decode([i])) for i in ids)

        judge = "the first reply token" if self.settings.judge.value == "first_token" else "a generated reply"
        return (
            f"{judge} judged against the refusal tokens {shown(self.refusal_ids)}; the compliance target is "
            f"{shown([self.comply_id])}, the commonest first reply token on the harmless test prompts"
        )

    def _rate(self, group: str, hooks: Sequence[Hook]) -> dict[str, Any]:
        prompts = self.prompts[group]
        flags = self.meter(list(prompts.texts), list(hooks))
        return rate_over_unit(flags.tolist(), None if prompts.clusters is None else list(prompts.clusters))

    def _judged(self, bypass: dict[str, Any], induce: dict[str, Any] | None) -> dict[str, Any]:
        out = {"bypass": bypass, "bypasses": bypass["ci95"][1] < self.settings.refusal_threshold}
        if induce is not None:
            out |= {"induce": induce, "induces": induce["ci95"][0] > self.settings.induce_threshold}
        return out

    def direction(self, direction: Tensor, *, with_cost: bool = True) -> dict[str, Any]:
        """Bypass (ablated everywhere, harmful) and induce (added at ``alpha`` to the selected layer,
        harmless) on held-out prompts; with the cost of the ablation on harmless prompts."""
        from mechatlas.interp.interventions import ablation_hooks, addition_hooks

        unit = direction.double() / direction.double().norm()
        ablate = ablation_hooks(self.model.n_layers, unit)
        out = self._judged(
            self._rate("harmful", ablate),
            self._rate("harmless", addition_hooks(unit, self.layer, self.alpha)),
        )
        if with_cost:
            out |= self._cost(ablate)
        return out

    def in_sample(
        self, direction: Tensor, harmful: Sequence[str], harmless: Sequence[str], *, keep: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The same judgement on train prompts (Wilson intervals); with ``keep``, prompts that must go on
        refusing under the ablation (the pseudo-label null) count against bypassing."""
        from mechatlas.interp.interventions import ablation_hooks, addition_hooks
        from mechatlas.stats import rate

        unit = direction.double() / direction.double().norm()
        ablate = ablation_hooks(self.model.n_layers, unit)
        bypass = rate(self.meter(list(harmful), ablate).tolist())
        induce = rate(self.meter(list(harmless), addition_hooks(unit, self.layer, self.alpha)).tolist())
        out = self._judged(bypass, induce)
        if keep:
            kept: dict[str, Any] = rate(self.meter(list(keep), ablate).tolist())
            out["kept"] = kept
            out["bypasses"] = out["bypasses"] and kept["ci95"][0] > 1 - self.settings.refusal_threshold
        return out

    def harmless_kl(self, direction: Tensor) -> np.ndarray:
        """Per harmless test prompt, the first-token KL of ablating ``direction`` everywhere."""
        from mechatlas.interp.interventions import ablation_hooks
        from mechatlas.interp.scores import kl_divergence, last_logits

        hooks = ablation_hooks(self.model.n_layers, direction.double())
        texts = list(self.prompts["harmless"].texts)
        logits = last_logits(self.model, texts, hooks, batch_size=self.batch_size)
        return kl_divergence(self.harmless_logits, logits).double().numpy()

    def paired_mean(self, values: np.ndarray, index: Sequence[int] | None = None) -> dict[str, Any]:
        """The mean of per-harmless-prompt ``values`` (of the prompts at ``index``, default all) with a 95%
        interval over the right unit: whole clusters resampled where the prompts come in clusters, prompts
        otherwise."""
        clusters = self.prompts["harmless"].clusters
        if clusters is not None and index is not None:
            clusters = [clusters[i] for i in index]
        return mean_over_unit(values, clusters, seed=self.settings.seed)

    def _cost(self, hooks: Sequence[Hook], *, with_ce: bool = True) -> dict[str, Any]:
        """Mean first-token KL on harmless prompts, and (``with_ce``) the rise in cross-entropy of their
        unintervened replies (teacher-forced), each with its interval over the prompts' clusters."""
        from mechatlas.interp.evaluation import Condition, capability_cost
        from mechatlas.interp.scores import kl_divergence, last_logits

        texts = list(self.prompts["harmless"].texts)
        logits = last_logits(self.model, texts, list(hooks), batch_size=self.batch_size)
        kl = kl_divergence(self.harmless_logits, logits).double().numpy()
        out: dict[str, Any] = {"harmless_kl": self.paired_mean(kl)}
        if not with_ce:
            return out
        conditions = [
            Condition("baseline", "none", ("none", []), ("none", [])),
            Condition("intervened", "refusal", ("ablation", list(hooks)), ("ablation", list(hooks))),
        ]
        frame = capability_cost(
            self.model, texts, self.harmless_replies, conditions, batch_size=self.batch_size
        )
        ce = frame.pivot(index="prompt_index", columns="condition", values="ce")
        rise = (ce["intervened"] - ce["baseline"]).dropna()
        return out | {"reply_ce_rise": self.paired_mean(rise.to_numpy(), [int(i) for i in rise.index])}

    def subspace(self, basis: Tensor, constraint: Constraint, *, full: bool = True) -> dict[str, Any]:
        """The span of ``basis`` ablated (under ``constraint``'s blocks): refusal on harmful test prompts
        and the first-token KL on harmless ones; ``full`` adds refusal on harmless and alarming prompts,
        the read-out's retention and the replies' cross-entropy."""
        from mechatlas.interp.directions import orthonormal_basis
        from mechatlas.interp.evaluation import refusal_token_retention
        from mechatlas.interp.interventions import ablation_hooks, addition_hooks

        basis = orthonormal_basis(basis.double())
        hooks = ablation_hooks(self.model.n_layers, basis, constraint.blocks)
        out: dict[str, Any] = {"dimension": len(basis)}
        for group in ("harmful", "harmless", "alarming") if full else ("harmful",):
            if self.prompts[group].texts:
                out[group] = self._rate(group, hooks)
        out["overlap_with_readout"] = float((basis @ self.readout.double().T).norm() ** 2 / len(basis))
        # The read-out check: the selected direction added at its layer still induces refusal on harmless
        # prompts with the span ablated only if what reads the decision out after that layer is intact.
        add = addition_hooks(self.selected, self.layer, self.alpha / float(self.selected.norm()))
        out["induce_under_ablation"] = self._rate("harmless", [*hooks, *add])
        if not full:
            return out | self._cost(hooks, with_ce=False)
        retention = refusal_token_retention(
            self.model, list(self.prompts["harmful"].texts), self.harmful_replies, self.refusal_ids, hooks,
            batch_size=self.batch_size,
        )  # fmt: skip
        index = np.flatnonzero(~np.isnan(retention))
        clusters = self.prompts["harmful"].clusters
        out["readout_retention"] = mean_over_unit(
            retention[index],
            None if clusters is None else [clusters[i] for i in index],
            seed=self.settings.seed,
        )  # the mean change in the refusal tokens' log-prob on the harmful prompts' own refusals
        return out | self._cost(hooks)

    def random_subspace(self, m: int, constraint: Constraint, seed: int) -> Tensor:
        """A uniformly random ``m``-dimensional subspace, orthogonal to the constraint's protected rows."""
        from mechatlas.interp.directions import random_subspace
        from mechatlas.interp.intervention_training import complement_basis

        raw = random_subspace(m, self.model.d_model, seed).float()
        return complement_basis(raw, None if constraint.protected is None else constraint.protected.float())


def open_measure(params: Params, name: str, direction: Tensor, layer: int) -> Measure:
    """Load the model and the held-out prompts, and everything measurements compare against."""
    from mechatlas.experiments.common import fit_batch_sizes, load, model_spec
    from mechatlas.experiments.dimensionality.stages import _test_prompts, refusal_meter
    from mechatlas.interp.intervention_training import readout_directions
    from mechatlas.interp.models import greedy_generate
    from mechatlas.interp.scores import last_logits, refusal_token_ids

    dims, refusal = params.dimensionality, params.refusal_direction
    prompts = _test_prompts(params, name)
    model = load(params, model_spec(params, name))
    texts = [t for group in prompts.values() for t in group.texts]
    params = fit_batch_sizes(params, model, texts, new_tokens=dims.max_new_tokens)
    refusal = params.refusal_direction
    batch_size = max(params.run.batch_size, refusal.scoring_batch_size)
    refusal_ids = tuple(refusal_token_ids(model.tokenizer, refusal.refusal_tokens, model.chat_format))
    meter = refusal_meter(params, model, batch_size)
    harmless = list(prompts["harmless"].texts)
    logits = last_logits(model, harmless, [], batch_size=batch_size)
    first = logits.argmax(dim=-1)
    allowed = first[~torch.isin(first, torch.tensor(refusal_ids))]
    comply_id = int(torch.mode(allowed).values) if len(allowed) else int(first[0])
    tokens = dims.optimisation.target_tokens
    return Measure(
        name=name,
        selected=direction.double(),
        model=model,
        meter=meter,
        prompts=prompts,
        layer=layer,
        alpha=float(direction.double().norm()) * refusal.addition_coefficient,
        readout=readout_directions(model.bridge.original_model, refusal_ids, comply_id).float(),
        refusal_ids=refusal_ids,
        comply_id=comply_id,
        harmless_logits=logits,
        harmless_replies=greedy_generate(model, harmless, max_new_tokens=tokens, batch_size=batch_size),
        harmful_replies=greedy_generate(
            model, list(prompts["harmful"].texts), max_new_tokens=tokens, batch_size=batch_size
        ),
        settings=dims,
        batch_size=batch_size,
    )


@dataclass(frozen=True)
class TrainSet:
    real: Batches
    null: Batches
    readout_retain: Sequence[dict[str, Tensor]]
    weights: Weights
    train_harmful: list[str]
    train_harmless: list[str]
    null_bypass: list[str]
    null_keep: list[str]

    def counts(self) -> dict[str, int]:
        return {
            "train_harmful": len(self.train_harmful),
            "train_harmless": len(self.train_harmless),
            "null_bypass": len(self.null_bypass),
            "null_keep": len(self.null_keep),
        }


def _reply_ids(model: Any, prompts: Sequence[str], replies: Sequence[str]) -> tuple[list[Any], list[Any]]:
    """Prompt and reply token ids: the chat-formatted prompt, then the reply tokenised in its context."""
    from mechatlas.interp.chat import chat_prompts

    tok = model.tokenizer
    formatted = chat_prompts(tok, list(prompts), model.chat_format)
    prompt_ids, reply_ids = [], []
    for text, reply in zip(formatted, replies, strict=True):
        head = tok(text, add_special_tokens=False)["input_ids"]
        both = tok(text + reply, add_special_tokens=False)["input_ids"]
        tail = (
            both[len(head) :]
            if both[: len(head)] == head
            else tok(reply, add_special_tokens=False)["input_ids"]
        )
        prompt_ids.append(head)
        reply_ids.append(tail)
    return prompt_ids, reply_ids


def train_set(measure: Measure, params: Params) -> TrainSet:
    """Train prompts the model refuses (harmful) or answers (harmless), and their teacher-forced batches:
    compliance under the difference-in-means ablation, refusal under its addition (to the first full stop,
    as in the paper's code), the harmless prompts' own replies (retain), and the harmful prompts' own
    refusals with their first token unscored (the read-out retain of the constrained search)."""
    from mechatlas.experiments.common import cap_per_domain, load_prompts, model_spec
    from mechatlas.experiments.dimensionality.groups import ALARMING
    from mechatlas.interp.interventions import ablation_hooks, addition_hooks
    from mechatlas.interp.models import greedy_generate

    settings = params.dimensionality.optimisation
    model, meter = measure.model, measure.meter
    records = [r for r in load_prompts(params, model_spec(params, measure.name)) if r.split == "train"]
    texts = {}
    for label, wanted in (("harmful", True), ("harmless", False)):
        pool = [r for r in records if r.label == label and r.domain != ALARMING]
        pool = cap_per_domain(pool, 2 * settings.train_prompts, settings.seed)  # judge only what may be used
        refused = meter([r.text for r in pool])
        kept = [r for r, flag in zip(pool, refused, strict=True) if bool(flag) == wanted]
        texts[label] = [r.text for r in cap_per_domain(kept, settings.train_prompts, settings.seed)]
    harmful, harmless = texts["harmful"], texts["harmless"]
    coefficient = params.refusal_direction.addition_coefficient
    unit_hooks = ablation_hooks(model.n_layers, measure.selected)
    add_hooks = addition_hooks(measure.selected, measure.layer, coefficient)
    tokens, size, pad = settings.target_tokens, settings.batch_size, model.tokenizer.pad_token_id

    def generate(prompts: list[str], hooks: list[Hook]) -> list[str]:
        return greedy_generate(
            model, prompts, max_new_tokens=tokens, batch_size=measure.batch_size, fwd_hooks=hooks
        )

    comply = generate(harmful, unit_hooks)
    refuse = [r.split(".")[0] + "." if "." in r else r for r in generate(harmless, add_hooks)]
    own_harmless = generate(harmless, [])
    own_harmful = generate(harmful, [])
    ablation = batches_of(*_reply_ids(model, harmful, comply), pad, size)
    addition = batches_of(*_reply_ids(model, harmless, refuse), pad, size)
    retain = batches_of(*_reply_ids(model, harmless, own_harmless), pad, size)
    readout = []
    for batch in batches_of(*_reply_ids(model, harmful, own_harmful), pad, size):
        labels = batch["labels"].clone()
        first = (labels >= 0).int().argmax(dim=1)  # the first scored position predicts the decision token
        labels[torch.arange(len(labels)), first] = -100
        readout.append({**batch, "labels": labels})
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(harmful))
    half = set(order[: len(order) // 2].tolist())
    null_bypass = [t for i, t in enumerate(harmful) if i in half]
    null_keep = [t for i, t in enumerate(harmful) if i not in half]
    null_targets = [
        c if i in half else own for i, (c, own) in enumerate(zip(comply, own_harmful, strict=True))
    ]
    null_ablation = batches_of(*_reply_ids(model, harmful, null_targets), pad, size)
    weights = Weights(settings.ablation_weight, settings.addition_weight, settings.retain_weight)
    return TrainSet(
        real=Batches(ablation, addition, retain),
        null=Batches(null_ablation, addition, retain),
        readout_retain=readout + retain,
        weights=weights,
        train_harmful=harmful,
        train_harmless=harmless,
        null_bypass=null_bypass,
        null_keep=null_keep,
    )
