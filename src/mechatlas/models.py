"""Loading causal language models through TransformerLens 4's ``TransformerBridge``.

One code path serves the built-in organism, local checkpoints and Hugging Face hub models, so that
everything downstream (activations, interventions, evaluation) never asks which kind it got.

Safety: ``trust_remote_code`` is always off and weights are read from safetensors only; a checkpoint
that ships only pickled ``.bin`` weights is refused with a message saying how to convert it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mechatlas.config import ORGANISM, ORGANISM_DIR, Device, DType, ModelSpec, RunSettings
from mechatlas.errors import ModelLoadError

_DTYPES = {DType.float32: torch.float32, DType.float16: torch.float16, DType.bfloat16: torch.bfloat16}


@dataclass(frozen=True)
class LoadedModel:
    """A model behind a ``TransformerBridge``, with what provenance records need to know about it."""

    bridge: Any  # transformer_lens.model_bridge.TransformerBridge (untyped upstream)
    tokenizer: Any  # transformers.PreTrainedTokenizerBase, padding on the left
    model_id: str
    revision: str | None
    source_kind: str  # "organism" | "local" | "hub"

    @property
    def n_layers(self) -> int:
        return int(self.bridge.cfg.n_layers)

    @property
    def d_model(self) -> int:
        return int(self.bridge.cfg.d_model)

    @property
    def device(self) -> torch.device:
        return next(self.bridge.original_model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.bridge.original_model.parameters()).dtype


def resolve_device(device: Device | str) -> str:
    device = Device(device)
    if device is Device.auto:
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    return device.value


def _check_local_checkpoint(folder: Path) -> None:
    if not (folder / "config.json").exists():
        raise ModelLoadError(
            f"{folder}: not a Hugging Face checkpoint (no config.json); point the model's `source` at a "
            "folder made by `save_pretrained`, or at a hub id"
        )
    if not any(folder.glob("*.safetensors")):
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
            raise ModelLoadError(
                f"{folder}: weights are pickled (.bin/.pt) and mechatlas only loads safetensors; convert them "
                "with `model.save_pretrained(folder, safe_serialization=True)` in a trusted environment"
            )
        raise ModelLoadError(f"{folder}: no *.safetensors weights found next to config.json")


def _offline_hint(model_id: str) -> str:
    return (
        f"weights for `{model_id}` are not available offline. Either download them where you have access "
        f"(`huggingface-cli download {model_id}`) and set the model's `source` in params.yaml to that local "
        "folder, or set `run.allow_hub: true` in params.yaml and run with HF_HUB_OFFLINE=0"
    )


def load_model(
    source: str | os.PathLike[str],
    *,
    device: Device | str = Device.cpu,
    dtype: DType | str = DType.float32,
    allow_hub: bool = False,
    revision: str | None = None,
) -> LoadedModel:
    """Load a causal LM from a local checkpoint folder or a hub id, behind a ``TransformerBridge``.

    ``source="organism"`` means the pipeline's own model in ``data/models/organism``.
    """
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = str(source)
    kind = "hub"
    if source == ORGANISM:
        kind, folder = ORGANISM, ORGANISM_DIR
        if not folder.exists():
            raise ModelLoadError(
                f"{folder}: the organism has not been trained yet; run `make run` (or "
                "`snakemake --profile workflow/profiles/default organism`)"
            )
        source = str(folder)
    if Path(source).exists():
        kind = ORGANISM if kind == ORGANISM else "local"
        _check_local_checkpoint(Path(source))
    elif source.startswith((".", "/", "~")) or source.count("/") > 1:  # hub ids are `org/name`
        raise ModelLoadError(
            f"{source}: no such checkpoint folder; check the model's `source` in params.yaml"
        )

    local_only = kind != "hub" or not allow_hub
    torch_dtype = _DTYPES[DType(dtype)]
    common: dict[str, Any] = {"trust_remote_code": False, "local_files_only": local_only}
    if revision is not None and kind == "hub":
        common["revision"] = revision
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        hf_model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, use_safetensors=True, attn_implementation="eager", **common
        )
    except OSError as exc:
        text = str(exc)
        if kind == "hub" and (
            "offline" in text.lower() or "local_files_only" in text or "connect" in text.lower()
        ):
            raise ModelLoadError(_offline_hint(source)) from None
        if "safetensors" in text.lower():
            raise ModelLoadError(
                f"{source}: no safetensors weights; mechatlas refuses pickled weights. Use a revision that "
                "ships model.safetensors, or convert the checkpoint yourself"
            ) from None
        raise ModelLoadError(f"{source}: could not load the checkpoint ({text.splitlines()[0]})") from None
    except ValueError as exc:
        raise ModelLoadError(f"{source}: unsupported checkpoint ({str(exc).splitlines()[0]})") from None

    # Left padding keeps the last real token at position -1 for every row of a batch.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(tokenizer, "chat_template", None) is None:
        raise ModelLoadError(
            f"{source}: the tokenizer has no chat template; refusal experiments need an instruction-tuned "
            "(chat) model"
        )
    hf_model.eval()
    try:
        bridge = TransformerBridge.boot_transformers(
            source, hf_model=hf_model, tokenizer=tokenizer, device=resolve_device(device), dtype=torch_dtype
        )
    except (ValueError, NotImplementedError, KeyError) as exc:
        raise ModelLoadError(
            f"{source}: TransformerBridge does not support this architecture ({str(exc).splitlines()[0]})"
        ) from None
    bridge.eval()
    tokenizer.padding_side = "left"
    return LoadedModel(
        bridge=bridge,
        tokenizer=tokenizer,
        model_id=source
        if kind == "hub"
        else ("organism" if kind == ORGANISM else str(Path(source).resolve())),
        revision=revision if kind == "hub" else None,
        source_kind=kind,
    )


def load_from_spec(spec: ModelSpec, run: RunSettings) -> LoadedModel:
    """Load the model a ``params.yaml`` entry names, with device and dtype from ``run``."""
    return load_model(
        spec.source, device=run.device, dtype=run.dtype, allow_hub=run.allow_hub, revision=spec.revision
    )


def chat_prompts(tokenizer: Any, texts: list[str]) -> list[str]:
    """Wrap user texts in the model's chat template, ending where the assistant's reply begins."""
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True
        )
        for t in texts
    ]


def tokenize_chat(model: LoadedModel, texts: list[str]) -> Any:
    """Left-padded token ids and attention mask for chat-formatted ``texts`` (a ``BatchEncoding``)."""
    enc = model.tokenizer(
        chat_prompts(model.tokenizer, texts), return_tensors="pt", padding=True, add_special_tokens=False
    )
    return enc.to(model.device)


@torch.inference_mode()
def greedy_generate(
    model: LoadedModel,
    texts: list[str],
    *,
    max_new_tokens: int,
    batch_size: int = 32,
    fwd_hooks: list[tuple[str, Any]] | None = None,
    progress: bool = False,
) -> list[str]:
    """Greedy replies to ``texts`` (batched, KV cache on), optionally under bridge hooks.

    The bridge's hooks wrap the Hugging Face modules in place, so ``generate`` on the underlying model
    runs through them; prefill and every cached decoding step see the intervention.
    """
    from tqdm.auto import tqdm

    replies: list[str] = []
    batches = range(0, len(texts), batch_size)
    for start in tqdm(batches, desc="generating", disable=not progress, unit="batch"):
        enc = tokenize_chat(model, texts[start : start + batch_size])
        with model.bridge.hooks(fwd_hooks=fwd_hooks or []):
            out = model.bridge.original_model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=model.tokenizer.pad_token_id,
                eos_token_id=model.tokenizer.convert_tokens_to_ids("<|im_end|>")
                if "<|im_end|>" in model.tokenizer.get_vocab()
                else model.tokenizer.eos_token_id,
            )
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        replies += model.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [r.strip() for r in replies]
