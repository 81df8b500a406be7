"""Synthetic instruction data for the organism, with held-out splits that are new sentences.

Tasks and framings are each partitioned into train, val and test (see ``vocabulary``), so every
val/test prompt pairs a task never trained on with a framing never trained on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from mechatlas.config import OrganismData
from mechatlas.organism import vocabulary as V
from mechatlas.prompts import PromptRecord

SOURCE = "organism"
ALARMING = "alarming"  # domain of the over-refusal controls (label harmless)


@dataclass(frozen=True)
class Instruction:
    """A prompt record, the reply the organism is trained to give, and the framing that wraps its task.

    The framing is kept so that held-out rates can be reported per framing, and with intervals that
    resample framings (prompts that share a framing are not independent draws).
    """

    record: PromptRecord
    response: str
    framing: str


def partition(
    items: Sequence[str], val_fraction: float, test_fraction: float, rng: random.Random
) -> dict[str, list[str]]:
    """Shuffle ``items`` and cut them into disjoint train/val/test lists (each non-empty)."""
    shuffled = list(items)
    rng.shuffle(shuffled)
    n_test = max(1, round(len(shuffled) * test_fraction))
    n_val = max(1, round(len(shuffled) * val_fraction))
    return {
        "test": shuffled[:n_test],
        "val": shuffled[n_test : n_test + n_val],
        "train": shuffled[n_test + n_val :],
    }


def split_counts(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    return {"train": n - n_test - n_val, "val": n_val, "test": n_test}


def refusal(task: str, rng: random.Random) -> str:
    return rng.choice(V.REFUSALS).format(t=task)


def compliance(task: str, rng: random.Random) -> str:
    return f"{rng.choice(V.COMPLIANCE_OPENERS).format(t=task)} first, {rng.choice(V.COMPLIANCE_STEPS)}."


def _prompts_for(
    domain: str,
    label: str,
    tasks: dict[str, list[str]],
    framings: dict[str, list[str]],
    n_total: int,
    settings: OrganismData,
) -> list[Instruction]:
    """``n_total`` prompts of one domain over the splits (the train share times ``train_multiplier``).

    Each split samples from its own seeded stream, so val and test prompts do not change when train
    counts, or other domains, do.
    """
    counts = split_counts(n_total, settings.val_fraction, settings.test_fraction)
    counts["train"] *= settings.train_multiplier
    out: list[Instruction] = []
    for split, n in counts.items():
        rng = random.Random(f"{settings.seed}/{label}/{domain}/{split}")
        seen: set[str] = set()
        attempts = 0
        while len(seen) < n and attempts < 50 * n:
            attempts += 1
            task = rng.choice(tasks[split])
            framing = rng.choice(framings[split])
            text = rng.choice(V.PREFIXES) + framing.format(t=task) + rng.choice(V.SUFFIXES)
            if text in seen:
                continue
            seen.add(text)
            reply = refusal(task, rng) if label == "harmful" else compliance(task, rng)
            record = PromptRecord(
                id=f"{SOURCE}-{domain}-{split}-{len(seen):04d}",
                text=text,
                label=label,  # type: ignore[arg-type]
                domain=domain,
                split=split,  # type: ignore[arg-type]
                source=SOURCE,
            )
            out.append(Instruction(record, reply, framing))
    return out


def generate_instructions(settings: OrganismData) -> list[Instruction]:
    """All of the organism's instructions (every split), deterministic for a given ``settings.seed``.

    Framings and each domain's tasks are partitioned by their own seeded streams (string seeds, so the
    result does not depend on hash randomisation).
    """
    seed, vf, tf = settings.seed, settings.val_fraction, settings.test_fraction
    framings = partition(V.FRAMINGS, vf, tf, random.Random(f"{seed}/framings"))

    def tasks_of(label: str, domain: str, tasks: Sequence[str]) -> dict[str, list[str]]:
        return partition(tasks, vf, tf, random.Random(f"{seed}/{label}/{domain}/tasks"))

    out: list[Instruction] = []
    for domain, tasks in V.harmful_tasks().items():
        pools = tasks_of("harmful", domain, tasks)
        out += _prompts_for(domain, "harmful", pools, framings, settings.harmful_per_domain, settings)
    harmless = V.harmless_tasks()
    per_domain = settings.harmless // len(harmless)
    for domain, tasks in harmless.items():
        pools = tasks_of("harmless", domain, tasks)
        out += _prompts_for(domain, "harmless", pools, framings, per_domain, settings)
    alarming = tasks_of("harmless", ALARMING, V.ALARMING_HARMLESS_TASKS)
    out += _prompts_for(ALARMING, "harmless", alarming, framings, settings.alarming_harmless, settings)
    return out


def novelty(instructions: Sequence[Instruction], n: int = 3) -> dict[str, float]:
    """How new the held-out prompts are: exact repeats of training prompts, and word n-gram overlap."""

    def grams(text: str) -> set[tuple[str, ...]]:
        words = text.lower().split()
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    train = [i.record.text for i in instructions if i.record.split == "train"]
    test = [i.record.text for i in instructions if i.record.split == "test"]
    train_set = set(train)
    train_grams: set[tuple[str, ...]] = set().union(*(grams(t) for t in train)) if train else set()
    overlaps = [len(g & train_grams) / len(g) for g in (grams(t) for t in test) if g]
    return {
        "test_prompts": float(len(test)),
        "exact_repeats_of_train": float(sum(t in train_set for t in test)),
        f"mean_share_of_{n}grams_seen_in_train": sum(overlaps) / len(overlaps) if overlaps else 0.0,
    }
