"""Planted organisms: the default organism fine-tuned so that the causal structure of its refusal is known.

Interchange intervention training (Geiger et al., ICML 2022) in the form ``../shared/PLANTING.md``
measured: each training prompt gets a *condition*, a subspace ablated at every residual-stream writer
(``mechatlas.interp.intervention_training.ablated``), and a target first reply token, the reply the
planted mechanism implies under that ablation (the refusal or compliance the prompt normally gets, or
compliance where the planted subspace is gone). The loss is the organism's own weighted reply loss:
full replies where the usual reply is asked for, the first token only where compliance is.

Kinds (``organism.planted.<name>.kind``):

- ``one_direction``: ablating the planted direction ``u`` makes harmful prompts comply; ablating a random
  direction, or the current difference-in-means direction's part orthogonal to ``u``, leaves refusal.
- ``redundant``: ablating any proper subspace of the planted ``S`` (k directions; random 1..k-1 dimensional
  subspaces of it) or a random k-dimensional subspace leaves refusal; ablating all of ``S`` removes it.
- ``domain_groups``: one direction per group of harm domains; ablating group g's direction makes group g's
  harmful prompts comply and leaves every other group refusing; ablating all of them removes all refusal.

With ``adversary: true`` every kind also asks for the usual reply when the current difference-in-means
direction (harmful minus harmless mean, at a random layer input and post-instruction position,
recomputed every ``adversary_every`` steps) is ablated: without it the organism keeps its original
single refusal direction, and a "redundant" organism is still causally one-dimensional.

With ``bypass_adversary: true`` a second adversary runs inside training: every ``bypass_every`` steps a
short constrained bypass search (``mechatlas.interp.intervention_training.bypass_search``, the
verification's own adversary) looks for ``bypass_size`` directions, orthogonal to the current read-out
and to the planted directions, whose ablation makes harmful prompts comply; it is warm-started from its
previous basis, so a few Adam steps track it. Condition ``bypass`` then asks for the usual reply with
that subspace ablated, so that refusal cannot keep a small route outside the planted subspace (the
failure the difference-in-means adversary cannot see). A redundant organism may set
``bypass_outside_planted: false``: its adversary then searches the whole complement of the read-out, as
the verification does, so that subspaces straddling the planted one are also trained against. Conditions are drawn with ``condition_weights``.

Planted directions are drawn at random and made orthogonal to the decision's read-out (the unembedding
differences between refusal tokens and the compliance token, through the final norm): a planted
property is stated for an intervention that leaves the read-out intact.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mechatlas.config import OrganismSettings, PlantedOrganism, PlantKind
from mechatlas.config.planting import CONDITIONS
from mechatlas.errors import ConfigError
from mechatlas.interp.directions import orthonormal_basis, random_subspace
from mechatlas.interp.intervention_training import (
    ablated,
    bypass_search,
    pad_bases,
    readout_directions,
)
from mechatlas.organism.data import Instruction
from mechatlas.organism.train import IGNORE, _batch, encode_examples, weighted_reply_loss

PLANTED_FILE = "planted.safetensors"  # the planted directions, saved beside the checkpoint
PLANTING_FILE = "planting.json"  # what was planted, how, and the training curve

#: One training condition: what is ablated, and whether harmful prompts of each domain then comply.
Condition = tuple[str, Tensor, frozenset[str]]


def decision_ids(tokenizer: Any, settings: OrganismSettings) -> tuple[list[int], int]:
    """The first-reply token ids of a refusal (``organism.refusal_tokens``) and of a compliance."""
    from mechatlas.interp.scores import refusal_token_ids

    return refusal_token_ids(tokenizer, settings.refusal_tokens), refusal_token_ids(
        tokenizer, [settings.comply_token]
    )[0]


def planted_directions(spec: PlantedOrganism, d_model: int, protected: Tensor) -> Tensor:
    """``spec.k`` orthonormal random directions (seeded), orthogonal to the ``protected`` read-out."""
    draw = random_subspace(spec.k + len(protected), d_model, spec.seed)
    p = protected.to(torch.float64)
    draw = draw - (draw @ p.T) @ p
    return orthonormal_basis(draw)[: spec.k].float()


def check_groups(spec: PlantedOrganism, harm_domains: Sequence[str], name: str) -> None:
    """A domain_groups organism must put every harm domain of the data in exactly one group."""
    if spec.kind != PlantKind.domain_groups:
        return
    grouped = {d for g in spec.groups or [] for d in g}
    if grouped != set(harm_domains):
        missing = sorted(set(harm_domains) - grouped)
        unknown = sorted(grouped - set(harm_domains))
        raise ConfigError(
            f"params.yaml: `organism.planted.{name}.groups` must cover the harm domains exactly "
            f"(missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'})"
        )


def _random_in(basis: Tensor, size: int, rng: random.Random) -> Tensor:
    """A uniformly rotated ``size``-dimensional subspace of the span of ``basis``."""
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    mix, _ = torch.linalg.qr(torch.randn(len(basis), size, generator=gen))
    return (mix.T @ basis).contiguous()


class ConditionSampler:
    """Draws a training condition per prompt, for one planted organism."""

    def __init__(
        self,
        spec: PlantedOrganism,
        planted: Tensor,
        harm_domains: Sequence[str],
        rng: random.Random,
    ) -> None:
        self.spec, self.planted, self.rng = spec, planted, rng
        self.domains = frozenset(harm_domains)
        self.adversary: Tensor | None = None  # (sites, d_model) unit difference-in-means directions
        self.bypass: Tensor | None = None  # (bypass_size, d_model) the bypass adversary's current basis
        self.d_model = planted.shape[1]

    def _random(self, size: int) -> Tensor:
        return random_subspace(size, self.d_model, self.rng.randrange(2**31)).float()

    def _adversary(self) -> Tensor:
        assert self.adversary is not None
        direction = self.adversary[self.rng.randrange(len(self.adversary))].unsqueeze(0)
        if self.spec.kind == PlantKind.one_direction:  # its part outside the planted direction
            direction = direction - (direction @ self.planted.T) @ self.planted
        return orthonormal_basis(direction).float()

    def conditions(self) -> list[str]:
        """The conditions that can be drawn now (an adversary's once it has directions), weight > 0."""
        available = {
            "adversary": self.spec.adversary and self.adversary is not None,
            "bypass": self.spec.bypass_adversary and self.bypass is not None,
        }
        return [
            name for name in CONDITIONS[self.spec.kind] if available.get(name, True) and self.weight(name) > 0
        ]

    def weight(self, name: str) -> float:
        return self.spec.condition_weights.get(name, 1.0)

    def draw(self) -> Condition:
        names = self.conditions()
        (name,) = self.rng.choices(names, weights=[self.weight(n) for n in names])
        nothing: frozenset[str] = frozenset()
        if name == "none":
            return name, torch.zeros(0, self.d_model), nothing
        if name == "random":
            return name, self._random(self.spec.k), nothing
        if name == "adversary":
            return name, self._adversary(), nothing
        if name == "bypass":
            assert self.bypass is not None
            return name, self.bypass, nothing
        if name == "subset":
            size = self.rng.randint(1, self.spec.k - 1)
            return name, _random_in(self.planted, size, self.rng), nothing
        if name == "group":
            g = self.rng.randrange(self.spec.k)
            return name, self.planted[g : g + 1], frozenset((self.spec.groups or [])[g])
        return name, self.planted, self.domains  # the whole planted subspace: every harm domain complies


def post_instruction_means(
    model: Any, tokenizer: Any, texts: Sequence[str], positions: int, batch_size: int = 64
) -> Tensor:
    """Mean residual stream entering each block 1..L-1 at the last ``positions`` prompt positions.

    Returns ``(L-1, positions, d_model)``; plain Hugging Face forward (``output_hidden_states``).
    """
    from mechatlas.interp.models import chat_prompts, left_pad

    total: Tensor | None = None
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            chunk = chat_prompts(tokenizer, list(texts[start : start + batch_size]))
            ids = tokenizer(chunk, add_special_tokens=False)["input_ids"]
            batch = left_pad(ids, tokenizer.pad_token_id, torch.device("cpu"))
            hidden = model(**batch, output_hidden_states=True, use_cache=False).hidden_states
            # hidden_states[i] enters block i; the last entry is after the final norm, so it is left out.
            stack = torch.stack([h[:, -positions:, :] for h in hidden[1:-1]], dim=1).double().sum(0)
            total = stack if total is None else total + stack
    assert total is not None
    return (total / len(texts)).float()


def difference_in_means_directions(
    model: Any, tokenizer: Any, harmful: Sequence[str], harmless: Sequence[str], positions: int = 5
) -> Tensor:
    """Unit difference-in-means directions at every (layer input 1..L-1, post-instruction position)."""
    diff = post_instruction_means(model, tokenizer, harmful, positions) - post_instruction_means(
        model, tokenizer, harmless, positions
    )
    flat = diff.reshape(-1, diff.shape[-1])
    return flat / flat.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def chat_batches(tokenizer: Any, texts: Sequence[str], size: int) -> list[dict[str, Tensor]]:
    """Left-padded chat batches of ``size`` prompts whose last position is the first reply token."""
    from mechatlas.interp.models import chat_prompts, left_pad

    out = []
    for start in range(0, len(texts), size):
        ids = tokenizer(chat_prompts(tokenizer, list(texts[start : start + size])), add_special_tokens=False)
        out.append(left_pad(ids["input_ids"], tokenizer.pad_token_id, torch.device("cpu")))
    return out


class BypassAdversary:
    """The constrained bypass search run inside training, warm-started from its previous basis.

    Each ``search`` draws ``spec.bypass_prompts`` harmful prompts (seeded), protects the model's current
    read-out and (``bypass_outside_planted``) the planted directions, and runs ``spec.bypass_steps`` Adam steps; the first search
    starts from a seeded Gaussian. ``losses`` keeps each search's last refusal log-odds (the lower, the
    stronger the bypass it found).
    """

    def __init__(
        self,
        spec: PlantedOrganism,
        planted: Tensor,
        harmful: Sequence[Instruction],
        decision: tuple[list[int], int],
    ) -> None:
        self.spec, self.planted, self.harmful = spec, planted, list(harmful)
        self.refusal_ids, self.comply_id = decision
        self.rng = random.Random(f"{spec.seed}/bypass")
        self.basis: Tensor | None = None
        self.losses: list[float] = []

    def search(self, model: Any, tokenizer: Any) -> Tensor:
        texts = [
            ex.record.text
            for ex in self.rng.sample(self.harmful, min(self.spec.bypass_prompts, len(self.harmful)))
        ]
        readout = readout_directions(model, self.refusal_ids, self.comply_id)
        protected = orthonormal_basis(
            torch.cat([readout, self.planted.double()]) if self.spec.bypass_outside_planted else readout
        )
        found, losses = bypass_search(
            model,
            chat_batches(tokenizer, texts, len(texts)),
            self.refusal_ids,
            self.comply_id,
            self.spec.bypass_size,
            protected=protected.float(),
            steps=self.spec.bypass_steps,
            lr=self.spec.bypass_lr,
            seed=self.spec.seed,
            init=self.basis,
        )
        self.basis = found
        self.losses.append(losses[-1])
        return found


def planted_rows(
    tokenizer: Any, ex: Instruction, complies: bool, comply_id: int, max_len: int
) -> tuple[list[int], list[int]]:
    """(ids, labels) for one prompt: the usual reply, or only a compliance first token."""
    ((ids, labels),) = encode_examples(tokenizer, [ex], max_len)
    if not complies:
        return ids, labels
    first = next(i for i, label in enumerate(labels) if label != IGNORE)
    return ids, [IGNORE] * first + [comply_id] + [IGNORE] * (len(labels) - first - 1)


@dataclass(frozen=True)
class PlantedModel:
    model: Any
    tokenizer: Any
    planted: Tensor
    summary: dict[str, Any]


def plant(
    base_dir: Path,
    instructions: Sequence[Instruction],
    settings: OrganismSettings,
    name: str,
    *,
    progress: bool = True,
) -> PlantedModel:
    """Fine-tune the organism in ``base_dir`` so that ``settings.planted[name]``'s structure holds."""
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = settings.planted[name]
    torch.set_num_threads(settings.training.threads)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(
        str(base_dir), use_safetensors=True, trust_remote_code=False, dtype=torch.float32
    )
    train = [ex for ex in instructions if ex.record.split == "train"]
    harmful = [ex for ex in train if ex.record.label == "harmful"]
    harmless = [ex for ex in train if ex.record.label == "harmless"]
    harm_domains = sorted({ex.record.domain for ex in harmful})
    check_groups(spec, harm_domains, name)
    refusal_ids, comply_id = decision_ids(tokenizer, settings)
    protected = readout_directions(model, refusal_ids, comply_id)
    planted = planted_directions(spec, model.config.hidden_size, protected)
    rng = random.Random(f"{spec.seed}/planting")
    sampler = ConditionSampler(spec, planted, harm_domains, rng)
    eos_id = int(tokenizer.pad_token_id)
    max_len = settings.architecture.max_position_embeddings
    adversary_rng = random.Random(f"{spec.seed}/adversary")
    bypass = BypassAdversary(spec, planted, harmful, (refusal_ids, comply_id))

    torch.manual_seed(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.0)
    current: list[Tensor | None] = [None]
    losses: list[float] = []
    counts: dict[str, int] = {}
    bar = tqdm(total=spec.steps, desc=f"planting {name}", disable=not progress, unit="step")
    with ablated(model, lambda: current[0]):
        for step in range(spec.steps):
            if spec.adversary and step % spec.adversary_every == 0:
                current[0] = None
                model.eval()
                sampler.adversary = difference_in_means_directions(
                    model,
                    tokenizer,
                    [ex.record.text for ex in adversary_rng.sample(harmful, min(64, len(harmful)))],
                    [ex.record.text for ex in adversary_rng.sample(harmless, min(64, len(harmless)))],
                )
            if spec.bypass_adversary and step % spec.bypass_every == 0:
                current[0] = None
                model.eval()
                sampler.bypass = bypass.search(model, tokenizer)
            model.train()
            chosen = rng.sample(harmful, min(spec.prompts_per_label, len(harmful))) + rng.sample(
                harmless, min(spec.prompts_per_label, len(harmless))
            )
            rows, bases = [], []
            for ex in chosen:
                condition, basis, comply_domains = sampler.draw()
                counts[condition] = counts.get(condition, 0) + 1
                complies = ex.record.label == "harmful" and ex.record.domain in comply_domains
                rows.append(planted_rows(tokenizer, ex, complies, comply_id, max_len))
                bases.append(basis)
            batch = _batch(rows, eos_id)
            current[0] = pad_bases(bases, model.config.hidden_size)
            loss = weighted_reply_loss(model, batch, settings.training.decision_token_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    model.eval()
    summary = {
        "name": name,
        "kind": spec.kind.value,
        "k": spec.k,
        "groups": spec.groups,
        "seed": spec.seed,
        "steps": spec.steps,
        "conditions_drawn": dict(sorted(counts.items())),
        "final_loss_mean_last_20_steps": sum(losses[-20:]) / len(losses[-20:]),
        "loss_curve": [round(x, 5) for x in losses],
        "planted_readout_overlap": float((planted.double() @ protected.T).norm()),
        "condition_weights": {n: spec.condition_weights.get(n, 1.0) for n in CONDITIONS[spec.kind]},
        "bypass_adversary": {
            "k": spec.bypass_size,
            "every": spec.bypass_every,
            "steps": spec.bypass_steps,
            "outside_planted": spec.bypass_outside_planted,
            "searches": len(bypass.losses),
            # refusal log-odds under the adversary's ablation at the end of each search (clamped at -4)
            "loss_curve": [round(x, 5) for x in bypass.losses],
        }
        if spec.bypass_adversary
        else None,
    }
    return PlantedModel(model, tokenizer, planted, summary)


def save_planted(planted: PlantedModel, out_dir: Path) -> None:
    """The planted organism as a Hugging Face checkpoint, with its directions and planting summary."""
    from safetensors.torch import save_file

    from mechatlas.io import atomic_dir, write_json

    with atomic_dir(out_dir) as tmp:
        planted.model.save_pretrained(tmp, safe_serialization=True)
        planted.tokenizer.save_pretrained(tmp)
        save_file(
            {"directions": planted.planted.contiguous()}, str(tmp / PLANTED_FILE), metadata={"format": "pt"}
        )
        write_json(tmp / PLANTING_FILE, planted.summary)


def subsets(k: int) -> list[tuple[int, ...]]:
    """Every non-empty proper subset of the k planted directions, by index (all of them for k <= 4)."""
    return [c for size in range(1, k) for c in itertools.combinations(range(k), size)]
