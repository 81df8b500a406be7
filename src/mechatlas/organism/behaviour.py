"""Held-out behaviour of the organism: how often it refuses, per kind of prompt, with 95% CIs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from mechatlas.interp.judges import SubstringJudge
from mechatlas.interp.models import LoadedModel, greedy_generate
from mechatlas.organism.data import ALARMING, tokens
from mechatlas.prompts import PromptRecord
from mechatlas.stats import cluster_bootstrap_rate, rate


def held_out_groups(records: Sequence[PromptRecord], split: str) -> dict[str, list[PromptRecord]]:
    """The prompts of ``split`` that each refusal rate is measured on."""
    return {
        "harmful": [r for r in records if r.split == split and r.label == "harmful"],
        "harmless": [
            r for r in records if r.split == split and r.label == "harmless" and r.domain != ALARMING
        ],
        "alarming_harmless": [r for r in records if r.split == split and r.domain == ALARMING],
    }


def held_out_behaviour(
    model: LoadedModel,
    records: Sequence[PromptRecord],
    prefixes: Sequence[str],
    *,
    split: str = "test",
    batch_size: int = 32,
    max_new_tokens: int = 16,
    framings: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Refusal rates on harmful, harmless and alarming-but-harmless prompts of ``split``, plus examples.

    With ``framings`` (record id -> the framing its prompt was built from), each group also gets rates per
    framing and a rate whose interval resamples framings (``refusal_rate_by_framing``).
    """
    groups = held_out_groups(records, split)
    result: dict[str, Any] = {"split": split, "refusal_rate": {}, "per_domain": {}, "examples": {}}
    for name, group in groups.items():
        replies = greedy_generate(
            model,
            [r.text for r in group],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=True,
        )
        flags = SubstringJudge(tuple(prefixes))([r.text for r in group], replies)
        result["refusal_rate"][name] = rate(flags)
        domains = sorted({r.domain for r in group})
        result["per_domain"][name] = {
            d: rate([f for f, r in zip(flags, group, strict=True) if r.domain == d]) for d in domains
        }
        if framings is not None:
            labels = [framings[r.id] for r in group]
            result.setdefault("refusal_rate_by_framing", {})[name] = cluster_bootstrap_rate(flags, labels)
            result.setdefault("per_framing", {})[name] = {
                f: rate([flag for flag, label in zip(flags, labels, strict=True) if label == f])
                for f in sorted(set(labels))
            }
        result["examples"][name] = [
            {"id": r.id, "prompt": r.text, "reply": reply, "refused": f}
            for r, reply, f in list(zip(group, replies, flags, strict=True))[:5]
        ]
    return result


def _bag_of_words(text: str) -> set[str]:
    seq = tokens(text)
    return set(seq) | {f"{a} {b}" for a, b in pairwise(seq)}


def lexical_control(
    train: Sequence[PromptRecord],
    prompt_sets: Mapping[str, Sequence[PromptRecord]],
    *,
    split: str = "test",
    steps: int = 300,
    l2: float = 1e-4,
) -> dict[str, Any]:
    """Refusal rates of a bag-of-words control: the same comparison, with the model swapped for a word counter.

    A logistic regression on word unigrams and bigrams, trained on the organism's own training prompts
    (harmful = refuse), "refuses" a prompt when it scores it harmful. Where it matches the organism, the
    held-out set can be solved from which words occur; the gap between the two is what the organism adds.
    Full-batch Adam from zeros for a fixed number of steps, so the result is deterministic.
    """
    import torch

    vocab: dict[str, int] = {}
    for record in train:
        for feature in _bag_of_words(record.text):
            vocab.setdefault(feature, len(vocab))

    def features(records: Sequence[PromptRecord]) -> torch.Tensor:
        x = torch.zeros(len(records), len(vocab))
        for row, record in enumerate(records):
            cols = [vocab[f] for f in _bag_of_words(record.text) if f in vocab]
            x[row, cols] = 1.0
        return x

    x, y = features(train), torch.tensor([r.label == "harmful" for r in train], dtype=torch.float32)
    weight = torch.zeros(len(vocab), requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y)
        loss = loss + l2 * weight.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    result: dict[str, Any] = {
        "method": f"logistic regression on word unigrams and bigrams ({len(vocab)} features), "
        f"trained on {len(train)} training prompts",
    }
    with torch.no_grad():
        for name, records in prompt_sets.items():
            result[name] = {
                group: rate([bool(v) for v in (features(rows) @ weight + bias > 0).tolist()])
                for group, rows in held_out_groups(records, split).items()
                if rows
            }
    return result
