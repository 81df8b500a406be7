"""The optimisers of ``mechatlas.interp.optimised`` on decoders whose answer is known by construction.

``planted_decoder`` sets the weights of a two-block Qwen2 decoder by hand. Attention is off, so each
position sees only its own token. The first block does nothing. The second block's MLP has one unit per
planted direction ``s_i``; a unit's output, ``silu(2 s_i)·s_i``, is positive unless the stream's ``s_i``
coordinate is zero, and every unit writes it along the read-out direction ``r``, which the unembedding turns into the refusal token's logit. A
harmful token's embedding carries a positive mix of all the ``s_i`` (mixes differ between tokens);
harmless tokens carry none. So refusal is redundant across the ``m`` planted directions: ablating all of
them before the second block removes it, while removing one direction silences at most the tokens whose
mix it is parallel to (one of the three mixes), and every other token keeps a planted component that fires. Ablating ``r`` everywhere removes refusal with one direction: the
read-out trap that the constrained search must not fall into.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mechatlas.interp.intervention_training import ablated, readout_directions
from mechatlas.interp.optimised import (
    Batches,
    Constraint,
    Weights,
    batches_of,
    cone_samples,
    optimise_cone,
    optimise_subspace,
    reply_cross_entropy,
)

D, REFUSE, COMPLY, FILLER = 12, 13, 14, 15
MIXES = {  # harmful token id -> its coefficients on the planted directions (m = 2): three mixes, far apart
    1: (1.0, 0.4),
    2: (0.4, 1.0),
    3: (0.8, 0.8),
    4: (1.0, 0.4),
    5: (0.4, 1.0),
    6: (0.8, 0.8),
}
HARMLESS = (7, 8, 9, 10, 11, 12)


def planted_decoder(m: int = 2) -> torch.nn.Module:
    """The hand-set decoder described above, with ``m`` planted directions (dims 0 .. m-1), the read-out
    ``r`` at dim ``m`` and a constant dim ``m + 1`` that the compliance token reads."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=16, hidden_size=D, intermediate_size=4, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=32, tie_word_embeddings=False,
    )  # fmt: skip
    model = Qwen2ForCausalLM(config).eval()
    r, const = m, m + 1
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for norm in [model.model.norm, *(n for layer in model.model.layers for n in (layer.input_layernorm, layer.post_attention_layernorm))]:  # fmt: skip
            norm.weight.fill_(1.0)
        embed = model.model.embed_tokens.weight
        embed[:, m + 2 :] = 0.05 * torch.randn(16, D - m - 2, generator=generator)
        embed[1:, const] = 1.0
        for token, mix in MIXES.items():
            embed[token, :m] = torch.tensor(mix[:m] if m == 2 else [max(mix)] * m)
        mlp = model.model.layers[1].mlp
        for i in range(m):
            mlp.gate_proj.weight[i, i] = 2.0  # unit i outputs silu(2 s_i) * s_i: positive unless s_i = 0
            mlp.up_proj.weight[i, i] = 1.0
            mlp.down_proj.weight[r, i] = 1.0
        # small weights keep the final norm from saturating, so the searches get useful gradients
        model.lm_head.weight[REFUSE, r] = 10.0
        model.lm_head.weight[COMPLY, const] = 1.0
    return model


def prompts(tokens: list[int]) -> list[list[int]]:
    return [[FILLER, FILLER, t] for t in tokens]


HARMFUL_IDS = prompts([t for t in MIXES for _ in range(4)])
HARMLESS_IDS = prompts([t for t in HARMLESS for _ in range(4)])


def refusal_rate(model: torch.nn.Module, basis: torch.Tensor | None, blocks: int | None = None) -> float:
    from mechatlas.interp.models import left_pad

    batch = left_pad(HARMFUL_IDS, 0, "cpu")
    rows = None if basis is None else basis.unsqueeze(0).expand(len(HARMFUL_IDS), -1, -1)
    with torch.no_grad(), ablated(model, lambda: rows, blocks=blocks):
        logits = model(**batch, use_cache=False).logits[:, -1]
    return float((logits.argmax(-1) == REFUSE).float().mean())


def comply_batches() -> Batches:
    return Batches(batches_of(HARMFUL_IDS, [[COMPLY]] * len(HARMFUL_IDS), 0, 8))


def test_the_planted_decoder_refuses_exactly_the_harmful_prompts_and_only_all_of_s_removes_it() -> None:
    model = planted_decoder()
    assert refusal_rate(model, None) == 1.0
    s = torch.eye(D)[:2]
    assert refusal_rate(model, s, blocks=1) == 0.0  # the whole planted subspace, before the decision block
    for v in (s[0], s[1], (s[0] + s[1]) / 2**0.5):
        # any one direction of it is not enough: it can silence only the tokens whose mix it is parallel to
        assert refusal_rate(model, v.unsqueeze(0), blocks=1) >= 0.6
    assert refusal_rate(model, torch.eye(D)[2:3]) == 0.0  # the read-out, ablated everywhere: the trap


def test_the_unconstrained_search_takes_the_read_out_with_one_direction() -> None:
    model = planted_decoder()
    fit = optimise_subspace(model, comply_batches(), 1, steps=150, lr=0.05, seed=0)
    assert refusal_rate(model, fit.basis) <= 0.05
    readout = readout_directions(model, [REFUSE], COMPLY).float()
    assert float((fit.basis @ readout.T).norm() ** 2) > 0.3  # it found the read-out, not the mechanism


@pytest.mark.parametrize("seed", [0, 1])
def test_the_constrained_search_recovers_the_planted_dimension(seed: int) -> None:
    """Constrained to the blocks before the decision and orthogonal to the read-out, one direction fails
    and two succeed: the smallest bypassing m is the planted m = 2."""
    model = planted_decoder()
    protected = readout_directions(model, [REFUSE], COMPLY).float()
    constraint = Constraint(blocks=1, protected=protected)
    found = {}
    for m in (1, 2):
        fit = optimise_subspace(
            model, comply_batches(), m, constraint=constraint, steps=150, lr=0.05, seed=seed
        )
        found[m] = refusal_rate(model, fit.basis, blocks=1)
        assert float((fit.basis @ protected.T).norm()) < 1e-5  # it stayed out of the read-out
    assert found[1] >= 0.6, found
    assert found[2] <= 0.05, found


def test_rdo_bypasses_and_induces_on_a_one_direction_decoder() -> None:
    """With one planted direction, the optimised direction both removes refusal when ablated and induces it
    when added to the decision block's input (the paper's two effects), from a random start."""
    from mechatlas.interp.intervention_training import ablated as ablate_ctx
    from mechatlas.interp.models import left_pad
    from mechatlas.interp.optimised import _Addition

    model = planted_decoder(m=1)
    harmless_refusals = batches_of(HARMLESS_IDS, [[REFUSE]] * len(HARMLESS_IDS), 0, 8)
    batches = Batches(comply_batches().ablation, harmless_refusals)
    fit = optimise_cone(
        model, batches, 1, layer=1, alpha=3.0, weights=Weights(retain=0.0), steps=150, lr=0.05
    )
    assert refusal_rate(model, fit.basis) <= 0.05
    batch = left_pad(HARMLESS_IDS, 0, "cpu")
    with torch.no_grad(), ablate_ctx(model, lambda: None), _Addition(model, 1) as add:
        add.vectors = 3.0 * fit.basis[0].expand(len(HARMLESS_IDS), -1)
        induced = model(**batch, use_cache=False).logits[:, -1].argmax(-1)
    assert float((induced == REFUSE).float().mean()) >= 0.95


def test_one_direction_per_row_gives_the_mean_of_the_one_at_a_time_losses() -> None:
    """The batched cone loss (each row ablating its own sampled direction) against a plain loop that
    ablates one direction for one prompt at a time."""
    model = planted_decoder()
    basis = torch.linalg.qr(torch.randn(D, 2, generator=torch.Generator().manual_seed(3)))[0].T
    batch = batches_of(HARMFUL_IDS[:6], [[COMPLY]] * 6, 0, 6)[0]
    rows = cone_samples(basis, 6, torch.Generator().manual_seed(4))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad(), ablated(model, lambda: rows.unsqueeze(1)):
        batched = reply_cross_entropy(model(**inputs, use_cache=False).logits, batch["labels"])
    one_at_a_time = []
    for i in range(6):
        single = {k: v[i : i + 1] for k, v in batch.items()}
        with torch.no_grad(), ablated(model, lambda i=i: rows[i : i + 1].unsqueeze(1)):
            logits = model(**{k: v for k, v in single.items() if k != "labels"}, use_cache=False).logits
        one_at_a_time.append(float(reply_cross_entropy(logits, single["labels"])))
    assert float(batched) == pytest.approx(np.mean(one_at_a_time), rel=1e-5)


def test_cone_samples_lie_in_the_positive_orthant_of_the_basis_and_start_with_it() -> None:
    basis = torch.eye(D)[:3]
    rows = cone_samples(basis, 10, torch.Generator().manual_seed(0))
    assert torch.allclose(rows[:3], basis)
    coefficients = rows @ basis.T
    assert bool((coefficients >= 0).all()) and torch.allclose(rows.norm(dim=-1), torch.ones(10))
    assert torch.allclose(rows[:, 3:], torch.zeros(10, D - 3))


def _rdo_record(bypass: float, kl_difference: tuple[float, float]) -> dict:
    seed = {
        "bypass": {"value": bypass, "ci95": [max(bypass - 0.05, 0.0), bypass + 0.05], "n": 160},
        "bypasses": bypass + 0.05 < 0.25,
        "harmless_kl": {"value": 0.05, "ci95": [0.04, 0.06], "n": 160},
        "kl_minus_dim": {"value": sum(kl_difference) / 2, "ci95": list(kl_difference), "n": 160},
    }
    dim = {"harmless_kl": {"value": 0.1, "ci95": [0.09, 0.11], "n": 160}}
    return {"optimised": {"rdo": {"rdo": [seed, seed], "difference_in_means": dim}}}


def test_the_side_effect_rule_replicates_only_where_rdo_bypasses_at_a_lower_kl() -> None:
    from mechatlas.config import DimensionalitySettings
    from mechatlas.experiments.dimensionality.verdicts import optimised_directions_fewer_side_effects as rule

    s = DimensionalitySettings()
    assert rule({}, _rdo_record(0.0, (-0.08, -0.02)), s)[0] == "replicated"
    assert rule({}, _rdo_record(0.0, (0.01, 0.05)), s)[0] == "not replicated"  # costs more
    assert rule({}, _rdo_record(0.6, (-0.08, -0.02)), s)[0] == "not replicated"  # does not bypass
    assert rule({}, _rdo_record(0.0, (-0.03, 0.02)), s)[0] == "not replicated"  # no seed clearly cheaper
    mixed = _rdo_record(0.0, (-0.08, -0.02))
    mixed["optimised"]["rdo"]["rdo"][1] = _rdo_record(0.0, (0.01, 0.05))["optimised"]["rdo"]["rdo"][0]
    assert rule({}, mixed, s)[0] == "partially"
    assert rule({}, {}, s)[0] == "pending"


def _stage_record() -> dict:
    """An optimised-stage record with every field the page reads (values made up; only the shape counts)."""
    r = {"value": 0.1, "ci95": [0.05, 0.2], "n": 160, "ci_method": "wilson"}
    mean = {"value": 0.04, "ci95": [0.03, 0.05], "n": 160}
    direction = {"bypass": r, "induce": r, "harmless_kl": mean, "reply_ce_rise": mean}
    verdict = {"share_passing": 0.5, "holds": False}
    subspace = {"harmful": r, "induce_under_ablation": r, "overlap_with_readout": 0.0, "harmless_kl": mean}
    return {
        "n": {"train_harmful": 64, "train_harmless": 64, "test_harmful": 160, "test_harmless": 160, "test_alarming": 45},
        "judge": "the first reply token judged against the refusal tokens 'I'",
        "rdo": {
            "difference_in_means": direction,
            "rdo": [direction | {"cosine_with_dim": 0.9, "kl_minus_dim": r}],
            "cosine_with_dim": {"mean": 0.9, "min": 0.9, "max": 0.9, "n_seeds": 1},
        },
        "cones": {"real": [{"m": 1, "held_out": verdict, "train": verdict}], "null": [{"m": 1, "train": verdict}],
                  "largest_m_real": 0, "largest_m_real_train": 0, "largest_m_null": 0},
        "bypass": {"constraint": "ablation in blocks 0..4 only", "smallest_m_unconstrained": 1, "smallest_m_constrained": None,
                   "unconstrained": [{"m": 1, "subspace": subspace, "random": {"harmful": r}}],
                   "constrained": [{"m": 1, "subspace": subspace, "random": {"harmful": r}}]},
        "multi": {"RDO (seed 0)": {"dimension": 1, "harmful": r, "harmless": r, "alarming": r, "harmless_kl": mean,
                                   "reply_ce_rise": mean}},
    }  # fmt: skip


def test_every_table_of_the_optimised_section_has_as_many_cells_per_row_as_headers() -> None:
    from mechatlas.experiments.dimensionality.optimised_tables import optimised_findings, optimised_headline

    lines = optimised_headline(_stage_record())
    tables = [line for line in lines if line.startswith("|")]
    assert (
        len([line for line in tables if set(line) <= set("|-: ")]) == 4
    )  # four tables, each with a rule line
    widths = {line.count("|") for line in tables}
    # each table's rows match its header; the four tables have 7, 4, 7 and 7 columns
    assert widths == {8, 5}, widths
    assert len(optimised_findings(_stage_record())) == 2
