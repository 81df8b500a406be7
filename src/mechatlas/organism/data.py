"""Synthetic instruction data for the organism, with held-out splits that are new sentences.

Tasks and framings (from ``data/organism/vocabulary.yaml``) are each partitioned into train, val and
test, so every val/test prompt pairs a task never trained on with a framing never trained on. By default
(``held_out_words: seen``) a held-out task or framing is built only from words that training tasks or
framings of its pool also use: a held-out prompt is a new sentence, but not a new word. A model trained
from scratch knows a word only from its training data; a pretrained model would know it from pretraining.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from mechatlas.config import HeldOutWords, OrganismData
from mechatlas.errors import ConfigError
from mechatlas.organism.vocabulary import VOCABULARY, Vocabulary
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


def tokens(text: str) -> list[str]:
    """The lower-cased words of a text, in order (a framing's ``{t}`` slot is not a word)."""
    return re.findall(r"[a-z0-9']+", text.replace("{t}", " ").lower())


def words(text: str) -> set[str]:
    """The distinct lower-cased words of a task, framing or prompt."""
    return set(tokens(text))


def partition(
    items: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    rng: random.Random,
    *,
    held_out_words: HeldOutWords = HeldOutWords.any,
    pool: str = "items",
) -> dict[str, list[str]]:
    """Shuffle ``items`` and cut them into disjoint train/val/test lists (each non-empty).

    With ``held_out_words=seen``, an item is held out only if each of its words stays in some training
    item; items are taken in shuffled order until val and test are full. Raises ``ConfigError`` naming
    ``pool`` if too few items qualify.
    """
    shuffled = list(items)
    rng.shuffle(shuffled)
    n_test = max(1, round(len(shuffled) * test_fraction))
    n_val = max(1, round(len(shuffled) * val_fraction))
    if held_out_words == HeldOutWords.any:
        held, train = shuffled[: n_test + n_val], shuffled[n_test + n_val :]
    else:
        in_train = Counter(w for item in shuffled for w in words(item))  # training items using each word
        held = []
        for item in shuffled:
            if len(held) == n_test + n_val:
                break
            # Leaving train must not orphan a word: this item's words are then still in training, and
            # so are those of the items held out before it (their counts only fall to 1, never 0).
            item_words = words(item)
            if all(in_train[w] > 1 for w in item_words):
                held.append(item)
                in_train.subtract(item_words)
        if len(held) < n_test + n_val:
            raise ConfigError(
                f"organism.data.held_out_words: only {len(held)} of the {n_test + n_val} held-out {pool} "
                "can be built from words that training ones also use; add more to "
                f"{VOCABULARY}, lower val_fraction/test_fraction, or set held_out_words: any"
            )
        chosen = set(held)
        train = [item for item in shuffled if item not in chosen]
    return {"test": held[:n_test], "val": held[n_test : n_test + n_val], "train": train}


def split_counts(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    return {"train": n - n_test - n_val, "val": n_val, "test": n_test}


def refusal(task: str, rng: random.Random, vocabulary: Vocabulary) -> str:
    return rng.choice(vocabulary.refusals).format(t=task)


def compliance(task: str, rng: random.Random, vocabulary: Vocabulary) -> str:
    opener = rng.choice(vocabulary.compliance_openers).format(t=task)
    return f"{opener} first, {rng.choice(vocabulary.compliance_steps)}."


def _prompts_for(
    domain: str,
    label: str,
    tasks: dict[str, list[str]],
    framings: dict[str, list[str]],
    n_total: int,
    settings: OrganismData,
    vocabulary: Vocabulary,
) -> list[Instruction]:
    """``n_total`` prompts of one domain over the splits (the train share times ``train_multiplier``).

    Each split samples from its own seeded stream, so val and test prompts do not change when train
    counts, or other domains, do. A split first deals every task and every framing of its pool once (in a
    shuffled order), then draws at random, so a split with at least as many prompts as tasks and framings
    uses them all: a training word is then in some training prompt, not only in the training pool.
    """
    counts = split_counts(n_total, settings.val_fraction, settings.test_fraction)
    counts["train"] *= settings.train_multiplier
    out: list[Instruction] = []
    for split, n in counts.items():
        rng = random.Random(f"{settings.seed}/{label}/{domain}/{split}")
        task_deck = rng.sample(tasks[split], len(tasks[split]))
        framing_deck = rng.sample(framings[split], len(framings[split]))
        seen: set[str] = set()
        attempts = 0
        while len(seen) < n and attempts < 50 * n:
            attempts += 1
            task = task_deck.pop() if task_deck else rng.choice(tasks[split])
            framing = framing_deck.pop() if framing_deck else rng.choice(framings[split])
            text = rng.choice(vocabulary.prefixes) + framing.format(t=task) + rng.choice(vocabulary.suffixes)
            if text in seen:
                continue
            seen.add(text)
            reply = (
                refusal(task, rng, vocabulary) if label == "harmful" else compliance(task, rng, vocabulary)
            )
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


def generate_instructions(settings: OrganismData, vocabulary: Vocabulary) -> list[Instruction]:
    """All of the organism's instructions (every split), deterministic for a given ``settings.seed`` and
    vocabulary.

    Framings and each domain's tasks are partitioned by their own seeded streams (string seeds, so the
    result does not depend on hash randomisation).
    """
    seed, vf, tf = settings.seed, settings.val_fraction, settings.test_fraction
    framings = partition(
        vocabulary.framings,
        vf,
        tf,
        random.Random(f"{seed}/framings"),
        held_out_words=settings.held_out_words,
        pool="framings",
    )

    def tasks_of(
        label: str, domain: str, tasks: Sequence[str], held_out_words: HeldOutWords = settings.held_out_words
    ) -> dict[str, list[str]]:
        rng = random.Random(f"{seed}/{label}/{domain}/tasks")
        return partition(tasks, vf, tf, rng, held_out_words=held_out_words, pool=f"{label} {domain} tasks")

    out: list[Instruction] = []
    for domain, tasks in vocabulary.all_harmful_tasks().items():
        pools = tasks_of("harmful", domain, tasks)
        out += _prompts_for(
            domain, "harmful", pools, framings, settings.harmful_per_domain, settings, vocabulary
        )
    harmless = vocabulary.all_harmless_tasks()
    per_domain = settings.harmless // len(harmless)
    for domain, tasks in harmless.items():
        pools = tasks_of("harmless", domain, tasks)
        out += _prompts_for(domain, "harmless", pools, framings, per_domain, settings, vocabulary)
    # Each alarming control is a one-off (its point is an unusual word in a benign request), so their
    # split is always a plain random one: these held-out prompts may carry words never seen in training.
    alarming = tasks_of("harmless", ALARMING, vocabulary.alarming_harmless_tasks, HeldOutWords.any)
    out += _prompts_for(
        ALARMING, "harmless", alarming, framings, settings.alarming_harmless, settings, vocabulary
    )
    return out


def novelty(instructions: Sequence[Instruction], n: int = 3) -> dict[str, float]:
    """How new the held-out prompts are: exact repeats of training prompts, word n-gram overlap, and how
    many test prompts (all; and the alarming controls among them) use a word no training prompt uses."""

    def grams(text: str) -> set[tuple[str, ...]]:
        tokens = text.lower().split()
        return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}

    train = [i.record.text for i in instructions if i.record.split == "train"]
    test = [i.record.text for i in instructions if i.record.split == "test"]
    train_set = set(train)
    train_grams: set[tuple[str, ...]] = set().union(*(grams(t) for t in train)) if train else set()
    overlaps = [len(g & train_grams) / len(g) for g in (grams(t) for t in test) if g]
    train_words: set[str] = set().union(*(words(t) for t in train)) if train else set()
    new_words = [
        i for i in instructions if i.record.split == "test" and not words(i.record.text) <= train_words
    ]
    return {
        "test_prompts": float(len(test)),
        "exact_repeats_of_train": float(sum(t in train_set for t in test)),
        f"mean_share_of_{n}grams_seen_in_train": sum(overlaps) / len(overlaps) if overlaps else 0.0,
        "test_prompts_with_a_word_unseen_in_train": float(len(new_words)),
        "of_which_alarming_controls": float(sum(i.record.domain == ALARMING for i in new_words)),
    }
