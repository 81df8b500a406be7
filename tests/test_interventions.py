"""Directional ablation, activation addition and weight orthogonalization, on tiny random-weight models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from beartype import beartype
from jaxtyping import jaxtyped

from mechatlas.interp.directions import orthonormal_basis
from mechatlas.interp.hooks import ablation_hook_names
from mechatlas.interp.interventions import (
    InterventionError,
    _orthogonalize,
    _writers,
    ablation_hooks,
    addition_hooks,
    max_logit_gap,
    project_out,
    row_ablation_hooks,
    save_orthogonalized_checkpoint,
)
from mechatlas.interp.models import LoadedModel, encode_prompts, load_model

TEXTS = ["How do I bake bread?", "Explain how to build a weapon, step by step please.", "hi"]
checked_project_out = jaxtyped(typechecker=beartype)(project_out)


@pytest.fixture(scope="module")
def models(tiny_checkpoints: dict[str, Path]) -> dict[str, LoadedModel]:
    return {arch: load_model(folder) for arch, folder in tiny_checkpoints.items()}


def _direction(d_model: int, k: int | None = None, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (d_model,) if k is None else (k, d_model)
    return torch.randn(*shape, generator=generator)


def test_projecting_out_a_subspace_leaves_no_component_in_it() -> None:
    basis = orthonormal_basis(_direction(16, k=3)).float()
    x = torch.randn(2, 5, 16)
    out = checked_project_out(x, basis)
    assert (out @ basis.T).abs().max() < 1e-5
    # the orthogonal complement is untouched
    assert torch.allclose(out - x, -(x @ basis.T) @ basis, atol=1e-6)


def test_per_row_projection_removes_each_rows_own_direction() -> None:
    directions = torch.nn.functional.normalize(torch.randn(2, 1, 8), dim=-1)
    x = torch.randn(2, 4, 8)
    out = checked_project_out(x, directions)
    for row in range(2):
        assert (out[row] @ directions[row, 0]).abs().max() < 1e-5


def test_the_basis_is_orthonormal_spans_the_input_and_drops_dependent_rows() -> None:
    a, b = _direction(12, seed=1), _direction(12, seed=2)
    basis = orthonormal_basis(torch.stack([a, b, a + 2 * b]))
    assert basis.shape == (2, 12)
    assert torch.allclose(basis @ basis.T, torch.eye(2, dtype=torch.float64), atol=1e-10)
    for v in (a, b):
        v = v.double()
        assert torch.allclose(basis.T @ (basis @ v), v, atol=1e-8)
    assert torch.allclose(orthonormal_basis(3 * a), (a / a.norm()).double().unsqueeze(0))


def test_a_zero_direction_cannot_be_ablated() -> None:
    assert orthonormal_basis(torch.zeros(8)).shape == (0, 8), "a zero vector spans nothing"
    with pytest.raises(InterventionError, match="zero vector"):
        ablation_hooks(2, torch.zeros(8))


def _record_after(names: list[str], seen: dict[str, torch.Tensor]) -> list[tuple[str, Any]]:
    def recorder(name: str) -> Any:
        def record(x: torch.Tensor, hook: Any) -> torch.Tensor:
            seen[name] = x.detach().clone()
            return x

        return record

    return [(name, recorder(name)) for name in names]


@pytest.mark.parametrize("arch", ["qwen2", "llama", "gemma2"])
@pytest.mark.parametrize("k", [None, 2])
def test_ablation_leaves_a_zero_projection_at_every_hooked_site(
    models: dict[str, LoadedModel], arch: str, k: int | None
) -> None:
    model = models[arch]
    directions = _direction(model.d_model, k)
    basis = orthonormal_basis(directions).float()
    names = ablation_hook_names(model.n_layers)
    seen: dict[str, torch.Tensor] = {}
    # Hooks on one point run in the order given: the recorder sees what the ablation left.
    hooks = ablation_hooks(model.n_layers, directions) + _record_after(names, seen)
    with torch.inference_mode(), model.bridge.hooks(fwd_hooks=hooks):
        model.bridge.original_model(**encode_prompts(model, TEXTS))
    assert len(seen) == 3 * model.n_layers
    for name, x in seen.items():
        assert (x @ basis.T).abs().max() < 1e-4 * max(1.0, x.abs().max().item()), name


def test_ablating_an_unrelated_direction_per_row_leaves_zero_rows_unchanged(
    models: dict[str, LoadedModel],
) -> None:
    model = models["llama"]
    batch = encode_prompts(model, TEXTS)
    directions = torch.zeros(len(TEXTS), model.d_model)
    directions[1] = _direction(model.d_model)
    with torch.inference_mode():
        plain = model.bridge.original_model(**batch).logits
        with model.bridge.hooks(fwd_hooks=row_ablation_hooks(model.n_layers, directions)):
            ablated = model.bridge.original_model(**batch).logits
    assert torch.allclose(plain[0], ablated[0], atol=1e-5) and torch.allclose(plain[2], ablated[2], atol=1e-5)
    assert not torch.allclose(plain[1], ablated[1], atol=1e-3)


def test_addition_shifts_the_residual_stream_at_its_own_layer_only(models: dict[str, LoadedModel]) -> None:
    model = models["qwen2"]
    vector = _direction(model.d_model)
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.n_layers)]
    plain: dict[str, torch.Tensor] = {}
    shifted: dict[str, torch.Tensor] = {}
    batch = encode_prompts(model, TEXTS)
    with torch.inference_mode():
        with model.bridge.hooks(fwd_hooks=_record_after(names, plain)):
            model.bridge.original_model(**batch)
        with model.bridge.hooks(
            fwd_hooks=addition_hooks(vector, 1, coefficient=-2.0) + _record_after(names, shifted)
        ):
            model.bridge.original_model(**batch)
    assert torch.equal(plain[names[0]], shifted[names[0]])
    assert torch.allclose(
        shifted[names[1]] - plain[names[1]], -2.0 * vector.expand_as(plain[names[1]]), atol=1e-5
    )


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("k", [None, 2])
def test_the_orthogonalized_checkpoint_loads_back_and_equals_hook_ablation(
    models: dict[str, LoadedModel], tmp_path: Path, arch: str, k: int | None
) -> None:
    model = models[arch]
    directions = 5 * _direction(model.d_model, k)
    folder = save_orthogonalized_checkpoint(
        model, directions, tmp_path / "orthogonalized", note={"test": True}
    )
    edited = load_model(folder)
    assert edited.dtype == torch.float32
    gap = max_logit_gap(model, edited, TEXTS, fwd_hooks=ablation_hooks(model.n_layers, directions))
    assert gap < 1e-4
    assert max_logit_gap(model, edited, TEXTS) > 1e-3, "the edit must change the model"


def test_tied_embeddings_are_untied_so_only_the_input_side_is_edited(
    models: dict[str, LoadedModel], tmp_path: Path
) -> None:
    model = models["qwen2"]  # the tiny Qwen2 ties its embeddings, like the organism
    assert model.bridge.original_model.config.tie_word_embeddings
    edited = load_model(save_orthogonalized_checkpoint(model, _direction(model.d_model), tmp_path / "o"))
    hf = edited.bridge.original_model
    assert not hf.config.tie_word_embeddings
    original_embedding = model.bridge.embed.original_component.weight
    unembedding = getattr(hf.get_output_embeddings(), "original_component", hf.get_output_embeddings()).weight
    assert torch.equal(unembedding, original_embedding)
    assert not torch.equal(edited.bridge.embed.original_component.weight, original_embedding)


def test_orthogonalizing_gemma2_is_refused_because_its_post_sublayer_norms_break_the_equivalence(
    models: dict[str, LoadedModel], tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    model = models["gemma2"]
    direction = 5 * _direction(model.d_model)
    with pytest.raises(InterventionError, match="normalises each sublayer's output"):
        save_orthogonalized_checkpoint(model, direction, tmp_path / "o")
    # The claim behind the refusal: editing the same weights anyway does not reproduce the ablation.
    naive = load_model(tiny_checkpoints["gemma2"])
    basis = orthonormal_basis(direction)
    with torch.no_grad():
        for module, layout in _writers_ignoring_norms(naive):
            module.weight.copy_(_orthogonalize(module.weight, basis, layout))
    gap = max_logit_gap(model, naive, TEXTS, fwd_hooks=ablation_hooks(model.n_layers, direction))
    assert gap > 1e-3


def _writers_ignoring_norms(model: LoadedModel) -> list[tuple[Any, str]]:
    blocks = model.bridge.blocks
    hidden = {}
    for index, block in enumerate(blocks):  # hide the post norms from the check, keep them in the model
        hidden[index] = {
            name: block._modules.pop(name) for name in ("ln1_post", "ln2_post") if name in block._modules
        }
    try:
        return _writers(model)
    finally:
        for index, modules in hidden.items():
            blocks[index]._modules.update(modules)
