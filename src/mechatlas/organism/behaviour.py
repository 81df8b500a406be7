"""Held-out behaviour of the organism: how often it refuses, per kind of prompt, with 95% CIs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mechatlas.models import LoadedModel, greedy_generate
from mechatlas.organism.data import ALARMING
from mechatlas.prompts import PromptRecord
from mechatlas.stats import cluster_bootstrap_rate, rate


def is_refusal(reply: str, prefixes: Sequence[str]) -> bool:
    """Substring judge: a reply that contains any refusal marker counts as a refusal."""
    lowered = reply.lower()
    return any(p.lower() in lowered for p in prefixes)


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
    groups = {
        "harmful": [r for r in records if r.split == split and r.label == "harmful"],
        "harmless": [
            r for r in records if r.split == split and r.label == "harmless" and r.domain != ALARMING
        ],
        "alarming_harmless": [r for r in records if r.split == split and r.domain == ALARMING],
    }
    result: dict[str, Any] = {"split": split, "refusal_rate": {}, "per_domain": {}, "examples": {}}
    for name, group in groups.items():
        replies = greedy_generate(
            model,
            [r.text for r in group],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=True,
        )
        flags = [is_refusal(reply, prefixes) for reply in replies]
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
