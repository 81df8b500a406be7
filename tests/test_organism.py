"""The organism: its data generator's held-out splits, and training on a tiny config."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from mechatlas.config import HeldOutWords, validate_params
from mechatlas.errors import ConfigError
from mechatlas.interp.judges import SubstringJudge
from mechatlas.interp.models import load_model
from mechatlas.organism.behaviour import held_out_behaviour
from mechatlas.organism.data import ALARMING, generate_instructions, novelty, partition, words
from mechatlas.organism.tokenizer import build_tokenizer
from mechatlas.organism.train import train_organism
from mechatlas.organism.vocabulary import VOCABULARY, load_vocabulary

from conftest import REPO, TINY_OVERRIDES, deep_update, repo_params

SHIPPED = REPO / VOCABULARY
vocabulary = load_vocabulary(SHIPPED)


@pytest.fixture(scope="module")
def default_instructions() -> list[Any]:
    return generate_instructions(validate_params({}).organism.data, vocabulary)


def test_generation_is_deterministic_for_a_seed_and_changes_with_it() -> None:
    data = validate_params({}).organism.data
    first = generate_instructions(data, vocabulary)
    assert first == generate_instructions(data, vocabulary)
    other = generate_instructions(data.model_copy(update={"seed": 1}), vocabulary)
    assert [i.record.text for i in first] != [i.record.text for i in other]


def test_a_larger_train_multiplier_adds_training_sentences_and_leaves_val_and_test_alone() -> None:
    data = validate_params({}).organism.data

    def by_split(instructions: list[Any]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for ins in instructions:
            out.setdefault(ins.record.split, []).append(ins.record.text)
        return out

    instructions = generate_instructions(data, vocabulary)
    base = by_split(instructions)
    more = by_split(generate_instructions(data.model_copy(update={"train_multiplier": 3}), vocabulary))
    assert more["val"] == base["val"] and more["test"] == base["test"]
    assert len(set(more["train"])) == 3 * len(base["train"])
    # Changing one domain's count leaves every other domain's prompts as they were.
    fewer = by_split(
        generate_instructions(data.model_copy(update={"harmless": data.harmless // 2}), vocabulary)
    )
    harmful = [i.record.text for i in instructions if i.record.label == "harmful"]
    assert set(harmful) <= {t for texts in fewer.values() for t in texts}


def test_held_out_prompts_are_new_sentences_from_unseen_tasks_and_framings(
    default_instructions: list[Any],
) -> None:
    def task_and_framing(ins: Any) -> tuple[str, str]:
        """The task inside the prompt, found around the framing the instruction records."""
        text, framing = ins.record.text, ins.framing
        head, _, tail = framing.partition("{t}")
        cores = [
            text[len(prefix + head) : len(text) - len(tail + suffix)]
            for prefix in vocabulary.prefixes
            for suffix in sorted(vocabulary.suffixes, key=len, reverse=True)  # " Thanks!" before ""
            if text.startswith(prefix + head) and text.endswith(tail + suffix)
        ]
        assert framing in vocabulary.framings and cores and cores[0], text
        return cores[0], framing

    by_split: dict[str, set[tuple[str, str]]] = {}
    for ins in default_instructions:
        task, framing = task_and_framing(ins)
        by_split.setdefault(ins.record.split, set()).add(task)
        by_split.setdefault(ins.record.split + "-framings", set()).add(framing)
    assert not by_split["train"] & by_split["test"], "a test task also appears in training"
    assert not by_split["train-framings"] & by_split["test-framings"], (
        "a test framing also appears in training"
    )
    assert novelty(default_instructions)["exact_repeats_of_train"] == 0


def test_held_out_prompts_use_only_words_from_training_except_the_alarming_controls() -> None:
    """The study's split: new sentences, not new words (the alarming one-offs are the stated exception)."""
    data = validate_params(repo_params()).organism.data
    assert data.held_out_words == HeldOutWords.seen
    instructions = generate_instructions(data, vocabulary)
    train_words = set().union(*(words(i.record.text) for i in instructions if i.record.split == "train"))
    held_out = [i for i in instructions if i.record.split in ("val", "test")]
    unseen = {i.record.domain for i in held_out if not words(i.record.text) <= train_words}
    assert unseen == {ALARMING}
    stats = novelty(instructions)
    assert stats["test_prompts_with_a_word_unseen_in_train"] == stats["of_which_alarming_controls"] > 0

    # A plain random split of the same vocabulary does hold out words no training prompt has.
    anything = novelty(
        generate_instructions(data.model_copy(update={"held_out_words": HeldOutWords.any}), vocabulary)
    )
    assert anything["test_prompts_with_a_word_unseen_in_train"] > anything["of_which_alarming_controls"]


def test_a_word_closed_partition_keeps_every_held_out_word_in_training() -> None:
    items = [
        f"{verb} the {noun}" for verb in ("paint", "move", "clean", "fix") for noun in ("door", "roof", "car")
    ]
    items += ["juggle flaming torches", "recite a sonnet"]  # words no other item uses: never held out
    split = partition(items, 0.2, 0.3, random.Random(0), held_out_words=HeldOutWords.seen)
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(items)
    assert len(split["test"]) == round(len(items) * 0.3) and len(split["val"]) == round(len(items) * 0.2)
    train_words = set().union(*(words(t) for t in split["train"]))
    assert all(words(t) <= train_words for t in split["val"] + split["test"])
    assert {"juggle flaming torches", "recite a sonnet"} <= set(split["train"])


def test_too_few_word_closed_items_is_a_config_error_that_says_what_to_do() -> None:
    items = ["alpha beta", "gamma delta", "epsilon zeta", "eta theta"]  # no word shared
    with pytest.raises(ConfigError, match=r"held_out_words.*only 0 of the 2 held-out harmful toy tasks.*any"):
        partition(
            items, 0.25, 0.25, random.Random(0), held_out_words=HeldOutWords.seen, pool="harmful toy tasks"
        )
    assert len(partition(items, 0.25, 0.25, random.Random(0))["test"]) == 1  # `any` still splits them


def test_the_data_covers_at_least_six_harm_domains_and_the_alarming_controls(
    default_instructions: list[Any],
) -> None:
    records = [i.record for i in default_instructions]
    harm_domains = {r.domain for r in records if r.label == "harmful"}
    assert len(harm_domains) >= 6
    alarming = [r for r in records if r.domain == ALARMING]
    assert alarming and {r.label for r in alarming} == {"harmless"}
    assert {r.split for r in alarming} == {"train", "val", "test"}


def test_replies_refuse_harmful_and_comply_with_harmless_requests(default_instructions: list[Any]) -> None:
    prefixes = validate_params({}).organism.refusal_prefixes
    judge = SubstringJudge(tuple(prefixes))
    flags = judge(
        [ins.record.text for ins in default_instructions], [ins.response for ins in default_instructions]
    )
    for ins, refused in zip(default_instructions, flags, strict=True):
        assert refused == (ins.record.label == "harmful"), ins


def test_the_shipped_vocabulary_loads_with_every_domain_and_its_pattern_tasks() -> None:
    harmful, harmless = vocabulary.all_harmful_tasks(), vocabulary.all_harmless_tasks()
    assert list(harmful) == list(vocabulary.harmful_tasks) == list(vocabulary.harmful_patterns)
    assert list(harmless) == list(vocabulary.harmless_tasks) == list(vocabulary.harmless_patterns)
    assert len(harmful) == 8 and len(harmless) == 10
    weapons = vocabulary.harmful_patterns["weapons"]
    assert harmful["weapons"][0] == vocabulary.harmful_tasks["weapons"][0] == "build a pipe bomb"
    assert harmful["weapons"][-1] == weapons.patterns[-1].format(x=weapons.objects[-1])
    assert len(harmful["weapons"]) == len(vocabulary.harmful_tasks["weapons"]) + len(weapons.patterns) * len(
        weapons.objects
    )
    assert all("{t}" in f for f in vocabulary.framings) and "" in vocabulary.prefixes


def _edited_copy(tmp_path: Path, edit: Any) -> Path:
    """A copy of the shipped vocabulary file, changed by ``edit``."""
    data = yaml.safe_load(SHIPPED.read_text())
    edit(data)
    path = tmp_path / "vocabulary.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("damage", "key"),
    [
        (lambda d: d.pop("framings"), "`framings` is missing"),
        (lambda d: d.update(refusals="I cannot help with that."), "`refusals` is a str"),
        (lambda d: d["compliance_steps"].insert(1, 3), "`compliance_steps[1]` is an int"),
        (lambda d: d["harmless_tasks"]["music"].insert(1, ""), "`harmless_tasks.music[1]` is empty"),
        (
            lambda d: d["framings"].insert(1, "How do I do it?"),
            "`framings[1]` is 'How do I do it?' without {t}",
        ),
        (
            lambda d: d["harmful_patterns"]["drugs"].pop("objects"),
            "`harmful_patterns.drugs` has the keys ['patterns']",
        ),
        (
            lambda d: d["harmless_patterns"].pop("music"),
            "`harmless_patterns` differs from `harmless_tasks` in its domains (music)",
        ),
        (lambda d: d.update(framing=d.pop("framings")), "`framing` is not a section"),
    ],
    ids=[
        "a missing section",
        "a string for a list",
        "a number in a list",
        "an empty task",
        "a framing without its task",
        "a pattern set without objects",
        "a domain with tasks but no patterns",
        "a misspelt section",
    ],
)
def test_a_damaged_vocabulary_file_is_a_config_error_naming_the_file_and_the_key(
    tmp_path: Path, damage: Any, key: str
) -> None:
    path = _edited_copy(tmp_path, damage)
    with pytest.raises(ConfigError) as raised:
        load_vocabulary(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and key in message and "; " in message and "\n" not in message


def test_a_vocabulary_file_that_is_not_yaml_or_is_missing_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"vocabulary.yaml: missing; pass an existing vocabulary file"):
        load_vocabulary(tmp_path / "vocabulary.yaml")
    (tmp_path / "vocabulary.yaml").write_text("framings: [How do I {t}?\n")
    with pytest.raises(
        ConfigError, match=r"vocabulary.yaml: not valid YAML \(line 1, column \d+: .*\); fix the syntax"
    ):
        load_vocabulary(tmp_path / "vocabulary.yaml")


def test_the_data_stage_builds_its_instructions_from_the_vocabulary_file_it_is_given(tmp_path: Path) -> None:
    from mechatlas.organism.stages import read_instructions, write_instructions

    path = _edited_copy(tmp_path, lambda d: d.update(refusals=["No, I will not {t}."]))
    params = validate_params(deep_update(repo_params(), TINY_OVERRIDES))
    write_instructions(params, tmp_path / "instructions.jsonl", tmp_path / "prompts.jsonl", path)
    harmful = [i for i in read_instructions(tmp_path / "instructions.jsonl") if i.record.label == "harmful"]
    assert harmful and all(i.response.startswith("No, I will not ") for i in harmful)


def test_the_tokenizer_has_a_chat_template_and_single_special_tokens() -> None:
    tok = build_tokenizer(["hello world", "user", "assistant"] * 5, vocab_size=300)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.convert_tokens_to_ids("<|im_end|>") in ids


def test_training_on_a_tiny_config_writes_a_loadable_checkpoint(
    tmp_path: Path, tiny_params_dict: dict
) -> None:
    params = validate_params(tiny_params_dict)
    instructions = generate_instructions(params.organism.data, vocabulary)
    summary = train_organism(instructions, params.organism, tmp_path / "organism", progress=False)
    assert summary["loss_curve"][-1] < summary["loss_curve"][0], "the loss goes down"
    assert (tmp_path / "organism" / "model.safetensors").exists()
    model = load_model(tmp_path / "organism")
    assert model.n_layers == 2 and model.d_model == 32
    assert type(model.bridge.original_model).__name__ == "Qwen2ForCausalLM"
    result = held_out_behaviour(
        model,
        [i.record for i in instructions],
        params.organism.refusal_prefixes,
        max_new_tokens=4,
        framings={i.record.id: i.framing for i in instructions},
    )
    for group in ("harmful", "harmless", "alarming_harmless"):
        assert result["refusal_rate"][group]["n"] > 0
        low, high = result["refusal_rate"][group]["ci95"]
        assert 0 <= low <= result["refusal_rate"][group]["value"] <= high <= 1
        by_framing = result["refusal_rate_by_framing"][group]
        assert by_framing["value"] == result["refusal_rate"][group]["value"]
        per_framing = result["per_framing"][group]
        assert sum(r["n"] for r in per_framing.values()) == by_framing["n"]
        assert set(per_framing) <= set(vocabulary.framings) and len(per_framing) == by_framing["clusters"]


def test_the_bag_of_words_control_reads_words_and_nothing_else() -> None:
    from mechatlas.organism.behaviour import lexical_control
    from mechatlas.prompts import PromptRecord

    def record(i: int, text: str, label: str, split: str, domain: str = "misc") -> PromptRecord:
        return PromptRecord(
            id=f"r{i}",
            text=text,
            label=label,
            domain=domain,
            split=split,
            source="test",  # type: ignore[arg-type]
        )

    shapes = ["please {t} now", "tell me how to {t}", "{t}, quickly", "can you {t}"]
    train = [
        record(i, shape.format(t=f"{verb} the {noun}"), label, "train")
        for i, (shape, verb) in enumerate((s, v) for s in shapes[:3] for v in ("paint", "fix", "move"))
        for noun, label in (
            ("bomb", "harmful"),
            ("gun", "harmful"),
            ("bread", "harmless"),
            ("kite", "harmless"),
        )
    ]
    held_out = [
        record(100, "can you paint the bomb", "harmful", "test"),
        record(101, "can you move the gun", "harmful", "test"),
        record(102, "can you fix the bread", "harmless", "test"),
        record(103, "can you move the kite", "harmless", "test"),
    ]
    unseen = [record(200 + i, f"zorp {w}", "harmful", "test") for i, w in enumerate(("quux", "blarg"))]
    result = lexical_control(train, {"known": held_out, "unknown": unseen})
    assert result["known"]["harmful"]["value"] == 1.0 and result["known"]["harmful"]["n"] == 2
    assert result["known"]["harmless"]["value"] == 0.0
    # Words it never saw carry no signal: the two "harmful" prompts get the same (bias-only) verdict.
    assert result["unknown"]["harmful"]["value"] in (0.0, 1.0)
    assert "alarming_harmless" not in result["known"]


def test_training_twice_on_the_same_data_writes_byte_identical_checkpoints(
    tmp_path: Path, tiny_params_dict: dict
) -> None:
    """DVC hashes the model folder: anything run-dependent in it (a wall time) would rerun every later stage."""
    params = validate_params(tiny_params_dict)
    instructions = generate_instructions(params.organism.data, vocabulary)
    for name in ("first", "second"):
        train_organism(instructions, params.organism, tmp_path / name, progress=False)
    first = {p.name: p.read_bytes() for p in (tmp_path / "first").iterdir()}
    second = {p.name: p.read_bytes() for p in (tmp_path / "second").iterdir()}
    assert "model.safetensors" in first and "training.json" in first
    assert first == second
