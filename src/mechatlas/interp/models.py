"""Loading causal language models through TransformerLens 4's ``TransformerBridge``.

One code path serves the built-in organism, local checkpoints and Hugging Face hub models, so that
everything downstream (activations, interventions, evaluation) never asks which kind it got.

Safety: ``trust_remote_code`` is always off and weights are read from safetensors only; a checkpoint
that ships only pickled ``.bin`` weights is refused with a message saying how to convert it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from mechatlas.errors import ModelLoadError
from mechatlas.interp.chat import (
    DEFAULT_CHAT_DATE,
    SENTINEL,
    ChatFormat,
    TemplateError,
    chat_format,
    chat_prompts,
    check_chat_format,
)
from mechatlas.io import model_source_kind

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DEVICES = ("cpu", "cuda", "mps", "auto")


@dataclass(frozen=True)
class LoadedModel:
    """A model behind a ``TransformerBridge``, with what provenance records need to know about it."""

    bridge: Any  # transformer_lens.model_bridge.TransformerBridge (untyped upstream)
    tokenizer: Any  # transformers.PreTrainedTokenizerBase, padding on the left
    model_id: str
    revision: str | None
    source_kind: str  # "organism" | "local" | "hub"
    chat: ChatFormat | None = None  # how prompts are built and where replies stop (see ``chat_format``)

    @property
    def chat_format(self) -> ChatFormat:
        return self.chat if self.chat is not None else chat_format(self.tokenizer)

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


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` or ``mps`` when available, else ``cpu``; other names pass through."""
    if device not in DEVICES:
        raise ModelLoadError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    missing = (device == "cuda" and not torch.cuda.is_available()) or (
        device == "mps" and not torch.backends.mps.is_available()
    )
    if missing:
        raise ModelLoadError(
            f"device {device!r} is not available on this machine; set `run.device` in params.yaml to "
            "`auto` (uses it where present) or `cpu`"
        )
    return str(device)


#: Files from which ``AutoTokenizer`` can build a tokenizer; a folder needs at least one of them.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")


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
    if not any((folder / name).exists() for name in TOKENIZER_FILES):
        raise ModelLoadError(
            f"{folder}: no tokenizer ({' or '.join(TOKENIZER_FILES)}); the checkpoint is incomplete: copy the "
            "tokenizer files beside config.json (or, for the organism, rerun its training stage)"
        )
    from safetensors import SafetensorError, safe_open

    for weights in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(weights), "pt"):  # reads the header, checks the file covers every tensor
                pass
        except (SafetensorError, OSError) as error:
            raise ModelLoadError(
                f"{weights}: damaged weights ({str(error).splitlines()[0]}); copy the checkpoint again "
                "(or, for the organism, rerun its training stage)"
            ) from None


def checkpoint_fingerprint(source: str | os.PathLike[str], revision: str | None = None) -> str:
    """A short identity of a checkpoint, recorded with artefacts computed from it and checked on reuse.

    For a local folder: the sha256 of its config, tokenizer files, and each weights file's size and
    safetensors header (tensor names, shapes and offsets), cheap even at 16 GB. For a hub id: the id
    and the revision, since the hub pins the files.
    """
    import hashlib

    folder = Path(source)
    if not folder.is_dir():
        return f"hub:{source}@{revision or 'default'}"
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix == ".safetensors":
            with path.open("rb") as handle:
                length = int.from_bytes(handle.read(8), "little")
                digest.update(path.name.encode() + str(path.stat().st_size).encode() + handle.read(length))
        elif (
            path.name == "config.json" or path.name in TOKENIZER_FILES or path.name == "tokenizer_config.json"
        ):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _offline_hint(model_id: str) -> str:
    return (
        f"weights for `{model_id}` are not available offline. Either download them where you have access "
        f"(`huggingface-cli download {model_id}`) and set the model's `source` in params.yaml to that local "
        "folder, or set `run.allow_hub: true` in params.yaml and run with HF_HUB_OFFLINE=0"
    )


def load_model(
    source: str | os.PathLike[str],
    *,
    device: str = "cpu",
    dtype: str = "float32",
    allow_hub: bool = False,
    revision: str | None = None,
    system_prompt: str | None = None,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> LoadedModel:
    """Load a causal LM from a local checkpoint folder or a hub id, behind a ``TransformerBridge``.

    ``device`` is one of ``cpu``, ``cuda``, ``mps`` or ``auto``; ``dtype`` one of ``DTYPES``. A hub id is
    fetched only when ``allow_hub`` is true (and the environment allows it). The chat format
    (``chat_format``: thinking off, ``chat_date`` pinned, ``system_prompt`` only when given, every end
    token) is built and checked against ``apply_chat_template(tokenize=True)`` once, here.
    """
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = str(source)
    kind = model_source_kind(source)
    if kind == "local":
        _check_local_checkpoint(Path(source))
    elif kind == "missing":  # written as a path; hub ids are `org/name`
        raise ModelLoadError(
            f"{source}: no such checkpoint folder; check the model's `source` in params.yaml"
        )
    if str(dtype) not in DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")

    local_only = kind != "hub" or not allow_hub
    torch_dtype = DTYPES[str(dtype)]
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
    chat = chat_format(
        tokenizer,
        system_prompt=system_prompt,
        date=chat_date,
        generation_eos=getattr(getattr(hf_model, "generation_config", None), "eos_token_id", None),
    )
    check_chat_format(tokenizer, chat)
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
        # the folder as given (relative to the project for the pipeline's own checkpoints): records made
        # from it must not depend on where the project is checked out; the fingerprint names its content
        model_id=source,
        revision=revision if kind == "hub" else None,
        source_kind=kind,
        chat=chat,
    )


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

    A reply ends at any of the chat format's stop tokens (the checkpoint's generation end tokens, the
    tokenizer's eos and the template's end-of-turn token).

    The bridge's hooks wrap the Hugging Face modules in place, so ``generate`` on the underlying model
    runs through them; prefill and every cached decoding step see the intervention.
    """
    from tqdm.auto import tqdm

    replies: list[str] = []
    batches = range(0, len(texts), batch_size)
    for start in tqdm(batches, desc="generating", disable=not progress, unit="batch"):
        batch = encode_prompts(model, texts[start : start + batch_size])
        enc = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        with model.bridge.hooks(fwd_hooks=fwd_hooks or []):
            out = model.bridge.original_model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=model.tokenizer.pad_token_id,
                eos_token_id=list(model.chat_format.stop_token_ids),
            )
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        replies += model.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [r.strip() for r in replies]


# --- the post-instruction tokens ------------------------------------------------------------------


def positions_from_end(n: int) -> tuple[int, ...]:
    """Negative offsets ``(-n, ..., -1)``: with left padding they index the same tokens in every row."""
    return tuple(range(-n, 0))


@dataclass(frozen=True)
class PostInstruction:
    """The chat-template tokens that follow every user message and precede the reply."""

    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]

    @property
    def positions(self) -> tuple[int, ...]:
        return positions_from_end(len(self.token_ids))


def post_instruction_tokens(tokenizer: Any, chat: ChatFormat | None = None) -> PostInstruction:
    """Find the post-instruction tokens by templating a sentinel message and taking what follows it.

    With thinking disabled (Qwen3) or closed (R1 distills) they end after the empty thinking block,
    where the reply begins.
    """
    (prompt,) = chat_prompts(tokenizer, [SENTINEL], chat)
    at = prompt.rfind(SENTINEL)
    if at < 0:
        raise TemplateError(
            "the chat template drops or rewrites the user's message, so the post-instruction tokens cannot be "
            "located; use a model whose template copies the message verbatim"
        )
    suffix = prompt[at + len(SENTINEL) :]
    ids = tuple(tokenizer(suffix, add_special_tokens=False)["input_ids"])
    full = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if not ids or tuple(full[-len(ids) :]) != ids:
        raise TemplateError(
            f"the chat template's reply prefix {suffix!r} tokenizes differently after a message than on its "
            "own; mechatlas cannot tell which tokens are post-instruction for this tokenizer"
        )
    return PostInstruction(ids, tuple(tokenizer.convert_ids_to_tokens(list(ids))))


# --- the one encoder --------------------------------------------------------------------------------


# --- the one encoder --------------------------------------------------------------------------------


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device | str
) -> dict[str, Tensor]:
    """Token id sequences as one left-padded batch: ``input_ids``, ``attention_mask``, ``position_ids``.

    Left padding keeps every row's last real token at position -1. Position ids count real tokens only
    (as ``generate`` does), so a padded row sees the same positions as the same sequence alone.

    >>> batch = left_pad([[5, 6, 7], [8]], pad_id=0, device="cpu")
    >>> batch["input_ids"].tolist(), batch["position_ids"].tolist()
    ([[5, 6, 7], [0, 0, 8]], [[0, 1, 2], [0, 0, 0]])
    """
    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_id)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        if seq:
            ids[i, width - len(seq) :] = torch.tensor(list(seq))
            mask[i, width - len(seq) :] = 1
    position_ids = (mask.cumsum(dim=-1) - 1).clamp(min=0)
    batch = {"input_ids": ids, "attention_mask": mask, "position_ids": position_ids}
    return {k: v.to(device) for k, v in batch.items()}


def check_prompt_texts(model: LoadedModel, texts: Sequence[str]) -> None:
    """Prompts are text: one that spells a control token of the tokenizer (``<|im_start|>``, ``<eos>``) is
    refused, since the template would turn it into a real turn or an end of text, not words to answer."""
    controls = [token for token in model.tokenizer.all_special_tokens if len(token) > 1]
    for text in texts:
        found = next((token for token in controls if token in text), None)
        if found is not None:
            raise TemplateError(
                f"prompt {_preview(text)} contains the control token {found!r}, which the chat template would "
                "obey instead of reading as text; mechatlas refuses such prompts: remove the token from the prompt"
            )


def _preview(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def encode_prompts(
    model: LoadedModel, texts: Sequence[str], post: PostInstruction | None = None
) -> dict[str, Tensor]:
    """The one encoder: user texts in the chat template, as a left-padded batch (see ``left_pad``).

    With ``post`` given, every row is checked to end in those post-instruction tokens.
    """
    check_prompt_texts(model, texts)
    prompts = chat_prompts(model.tokenizer, list(texts), model.chat_format)
    ids = model.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    longest = max((len(row) for row in ids), default=0)
    if longest > model.bridge.cfg.n_ctx:
        row = next(i for i, r in enumerate(ids) if len(r) == longest)
        raise TemplateError(
            f"prompt {_preview(texts[row])} is {longest} tokens in the chat template, longer than the model's "
            f"context of {model.bridge.cfg.n_ctx}; shorten it or leave it out of the prompt set"
        )
    batch = left_pad(ids, model.tokenizer.pad_token_id, model.device)
    if post is not None:
        input_ids: Int[Tensor, "batch seq"] = batch["input_ids"]
        n = len(post.token_ids)
        expected = torch.tensor(post.token_ids, device=input_ids.device)
        bad = (input_ids[:, -n:] != expected).any(dim=1).nonzero().flatten().tolist()
        if bad:
            raise TemplateError(
                f"prompt {texts[bad[0]]!r} does not end in the post-instruction tokens {list(post.tokens)}; its last "
                "characters merge with the template's reply prefix. Strip trailing whitespace from the prompt"
            )
    return batch
