"""Training the organism: a small Qwen2-family chat model, on CPU, in a few minutes.

The loss is next-token cross-entropy on the reply only (prompt tokens are masked), so the model learns
what to answer, not to imitate users.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mechatlas.config import OrganismSettings
from mechatlas.io import atomic_dir, write_json
from mechatlas.organism.data import Instruction, novelty
from mechatlas.organism.tokenizer import IM_END, build_tokenizer

IGNORE = -100  # label id that cross-entropy skips


def qwen2_config(settings: OrganismSettings, vocab_size: int, eos_id: int) -> Any:
    from transformers import Qwen2Config

    a = settings.architecture
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=a.hidden_size,
        intermediate_size=a.intermediate_size,
        num_hidden_layers=a.num_layers,
        num_attention_heads=a.num_heads,
        num_key_value_heads=a.num_kv_heads,
        max_position_embeddings=a.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def encode_examples(
    tokenizer: Any, examples: Sequence[Instruction], max_len: int
) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per example: the chat prompt, then the reply and ``<|im_end|>``."""
    encoded = []
    for ex in examples:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": ex.record.text}], tokenize=False, add_generation_prompt=True
        )
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(ex.response + IM_END, add_special_tokens=False)["input_ids"]
        ids = (p_ids + r_ids)[:max_len]
        labels = ([IGNORE] * len(p_ids) + r_ids)[:max_len]
        encoded.append((ids, labels))
    return encoded


def _batch(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), IGNORE)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(rows):  # right padding is fine for training
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        labels[i, : len(row_labels)] = torch.tensor(row_labels)
        mask[i, : len(row_ids)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def weighted_reply_loss(model: Any, batch: dict[str, torch.Tensor], decision_weight: float) -> torch.Tensor:
    """Cross-entropy on reply tokens, with the reply's first token (comply or refuse) weighted up.

    The first reply token carries the whole decision; the rest is mostly echoing the task. Weighting it
    keeps the small model's capacity on the behaviour the study measures.
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # Position t predicts token t+1.                                   # (B, T-1, V) vs (B, T-1)
    logits, targets = logits[:, :-1], batch["labels"][:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE, reduction="none"
    ).view(targets.shape)
    scored = targets != IGNORE
    first = scored & ~torch.cat([torch.zeros_like(scored[:, :1]), scored[:, :-1]], dim=1)
    weights = scored.float() + (decision_weight - 1.0) * first.float()
    return (per_token * weights).sum() / weights.sum()


def train_organism(
    instructions: Sequence[Instruction],
    settings: OrganismSettings,
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the organism on the train split and save it as a Hugging Face checkpoint in ``out_dir``."""
    from tqdm.auto import tqdm
    from transformers import Qwen2ForCausalLM

    t0 = time.time()
    training = settings.training
    torch.set_num_threads(training.threads)
    train = [ex for ex in instructions if ex.record.split == "train"]
    # The tokenizer sees only training text (and the template's role names), so held-out prompts may
    # contain words it has to split into unfamiliar pieces, as with a real model's rare words.
    tokenizer = build_tokenizer(
        [ex.record.text for ex in train] + [ex.response for ex in train] + ["user", "assistant"] * 50,
        settings.tokenizer.vocab_size,
    )
    eos_id = int(tokenizer.convert_tokens_to_ids(tokenizer.eos_token))  # type: ignore[arg-type]
    torch.manual_seed(training.seed)
    model = Qwen2ForCausalLM(qwen2_config(settings, len(tokenizer), eos_id))
    rows = encode_examples(tokenizer, train, settings.architecture.max_position_embeddings)

    steps_per_epoch = math.ceil(len(rows) / training.batch_size)
    total = steps_per_epoch * training.epochs
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay
    )

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine decay to 10%
        if step < training.warmup_steps:
            return (step + 1) / training.warmup_steps
        progress_ = (step - training.warmup_steps) / max(1, total - training.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    order = torch.Generator().manual_seed(training.seed)
    losses: list[float] = []
    model.train()
    bar = tqdm(total=total, desc="training organism", disable=not progress, unit="step")
    for _ in range(training.epochs):
        perm = torch.randperm(len(rows), generator=order).tolist()
        for start in range(0, len(rows), training.batch_size):
            batch = _batch([rows[i] for i in perm[start : start + training.batch_size]], eos_id)
            loss = weighted_reply_loss(model, batch, training.decision_token_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    model.eval()

    summary: dict[str, Any] = {
        "train_examples": len(rows),
        "steps": total,
        "final_loss_mean_last_20_steps": sum(losses[-20:]) / len(losses[-20:]),
        "loss_curve": [round(x, 5) for x in losses],
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "novelty_of_test_prompts": novelty(instructions),
    }
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "training.json", summary)
    # Wall time goes to the log, not into the checkpoint: the same inputs then give a byte-identical
    # model folder, so retraining unchanged data reruns nothing downstream.
    print(f"trained the organism in {time.time() - t0:.1f} s", file=sys.stderr)
    return summary
