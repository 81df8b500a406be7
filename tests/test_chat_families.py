"""Each family's chat template, as the family expects it: reply position, token ids, date, stop tokens."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from chat_families import FAMILIES, make_family_checkpoint
from mechatlas.interp.models import (
    LoadedModel,
    TemplateError,
    chat_format,
    check_chat_format,
    encode_prompts,
    greedy_generate,
    load_model,
    post_instruction_tokens,
)
from mechatlas.records import provenance

pytestmark = pytest.mark.xdist_group("chat_families")


@pytest.fixture(scope="module")
def family_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: make_family_checkpoint(name, root / name) for name in FAMILIES}


@pytest.fixture(scope="module")
def family_models(family_folders: dict[str, Path]) -> dict[str, LoadedModel]:
    return {name: load_model(folder) for name, folder in family_folders.items()}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_post_instruction_tokens_end_where_the_reply_begins(
    name: str, family_models: dict[str, LoadedModel]
) -> None:
    model, family = family_models[name], FAMILIES[name]
    post = post_instruction_tokens(model.tokenizer, model.chat_format)
    assert model.tokenizer.decode(list(post.token_ids)).endswith(family.reply_prefix)
    batch = encode_prompts(model, ["How do I bake bread?", "hi"], post)
    for row in batch["input_ids"].tolist():
        assert tuple(row[-len(post.token_ids) :]) == post.token_ids
        assert model.tokenizer.decode(row, skip_special_tokens=False).endswith(family.reply_prefix)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_prompt_ids_equal_apply_chat_template_tokenize(
    name: str, family_models: dict[str, LoadedModel]
) -> None:
    model = family_models[name]
    chat = model.chat_format
    text = "Write a poem about the sea."
    ids = encode_prompts(model, [text])["input_ids"][0].tolist()
    reference = model.tokenizer.apply_chat_template(
        chat.messages(text), tokenize=True, add_generation_prompt=True, **dict(chat.template_kwargs)
    )
    reference = list(reference["input_ids"] if not isinstance(reference, list) else reference)
    suffix = list(model.tokenizer(chat.suffix, add_special_tokens=False)["input_ids"]) if chat.suffix else []
    assert ids == reference + suffix


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_stop_tokens_are_the_generation_config_end_tokens_and_the_end_of_turn(
    name: str, family_models: dict[str, LoadedModel]
) -> None:
    model, family = family_models[name], FAMILIES[name]
    assert set(model.chat_format.stop_tokens) == {*family.generation_eos, family.eos, family.end_of_turn}
    assert family.end_of_turn in model.chat_format.stop_tokens


def test_qwen3_is_prompted_with_thinking_disabled_and_the_empty_think_block_is_post_instruction(
    family_models: dict[str, LoadedModel],
) -> None:
    model = family_models["qwen3"]
    assert model.chat_format.thinking == "disabled"
    assert dict(model.chat_format.template_kwargs)["enable_thinking"] is False
    post = post_instruction_tokens(model.tokenizer, model.chat_format)
    think = model.tokenizer("<think>\n\n</think>\n\n", add_special_tokens=False)["input_ids"]
    assert post.token_ids[-len(think) :] == tuple(think)
    assert "<think>" in post.tokens and "</think>" in post.tokens
    # The template's default (thinking on) ends before the block: the model would open <think> itself,
    # and positions read there would miss the block's tokens.
    default = model.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert default.endswith("<|im_start|>assistant\n") and "<think>" not in default


def test_an_open_thinking_block_without_a_switch_is_closed_empty(
    family_models: dict[str, LoadedModel],
) -> None:
    chat = family_models["r1_distill"].chat_format
    assert chat.thinking == "closed"
    assert chat.rendered.endswith("<think>\n\n</think>\n\n")


def test_the_date_is_pinned_recorded_and_does_not_follow_the_clock(family_folders: dict[str, Path]) -> None:
    today = datetime.date.today().strftime("%d %b %Y")
    pinned = load_model(family_folders["llama3_2"])
    assert pinned.chat_format.date == "26 Jul 2024"
    assert "Today Date: 26 Jul 2024" in pinned.chat_format.rendered
    assert today not in pinned.chat_format.rendered
    other = load_model(family_folders["llama3_2"], chat_date="01 Jan 2025")
    assert "Today Date: 01 Jan 2025" in other.chat_format.rendered
    a, b = (encode_prompts(m, ["hi"])["input_ids"].shape[1] for m in (pinned, other))
    assert other.chat_format.record()["date"] == "01 Jan 2025"
    assert (a, b) != (0, 0)
    # Llama 3.1 with the default pin gives exactly the template's own no-date prompt.
    llama31 = load_model(family_folders["llama3_1"])
    own = llama31.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert llama31.chat_format.render(llama31.tokenizer, ["hi"]) == [own]


def test_a_template_that_reads_the_clock_without_a_date_string_is_refused(
    family_folders: dict[str, Path],
) -> None:
    tokenizer = load_model(family_folders["qwen3"]).tokenizer
    tokenizer.chat_template = (
        "{{ strftime_now('%d %b %Y') }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    with pytest.raises(TemplateError, match="reads today's date"):
        chat_format(tokenizer)


def test_a_system_prompt_is_sent_only_when_named_and_recorded(family_folders: dict[str, Path]) -> None:
    plain = load_model(family_folders["phi3"])
    assert "<|system|>" not in plain.chat_format.rendered and plain.chat_format.system_prompt is None
    assert not plain.chat_format.template_system_text
    # Llama 3.x always writes its own system header (the dates); that is recorded, not hidden.
    assert load_model(family_folders["llama3_1"]).chat_format.record()["template_system_text"] is True
    named = load_model(family_folders["phi3"], system_prompt="Be brief.")
    assert named.chat_format.rendered.startswith("<|system|>\nBe brief.<|end|>\n")
    assert named.chat_format.record()["system_prompt"] == "Be brief."


def test_gemma2_refuses_a_system_prompt_with_a_readable_message(family_folders: dict[str, Path]) -> None:
    with pytest.raises(TemplateError, match=r"system_prompt: null"):
        load_model(family_folders["gemma2"], system_prompt="Be brief.")


def test_token_ids_that_differ_from_apply_chat_template_are_caught(
    family_models: dict[str, LoadedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = family_models["mistral"].tokenizer
    chat = family_models["mistral"].chat_format
    real = tokenizer.apply_chat_template

    def shifted(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        if kwargs.get("tokenize"):
            ids = list(out["input_ids"] if not isinstance(out, list) else out)
            return [*ids[:-1], ids[-1] + 1]
        return out

    monkeypatch.setattr(tokenizer, "apply_chat_template", shifted)
    with pytest.raises(TemplateError, match="differ from apply_chat_template"):
        check_chat_format(tokenizer, chat)


def test_generation_stops_on_every_stop_token(
    family_models: dict[str, LoadedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = family_models["gemma2"]
    seen: dict[str, Any] = {}
    real = model.bridge.original_model.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(model.bridge.original_model, "generate", spy)
    greedy_generate(model, ["hi"], max_new_tokens=2)
    end_of_turn = model.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert end_of_turn in seen["eos_token_id"]
    assert set(seen["eos_token_id"]) == set(model.chat_format.stop_token_ids)


def test_provenance_records_the_rendered_template_date_system_prompt_and_stop_tokens(
    family_models: dict[str, LoadedModel],
) -> None:
    from mechatlas.config import Params

    chat = family_models["llama3_2"].chat_format
    record = provenance(
        Params(),
        sections=["run"],
        model_name="organism",
        model_id="x",
        model_revision=None,
        target="t",
        seeds={},
        stage="refusal_evaluate",
        model_chat=chat.record(),
    )["model"]["chat"]
    assert record["date"] == "26 Jul 2024"
    assert record["system_prompt"] is None
    assert "<|eot_id|>" in record["stop_tokens"]
    assert record["rendered_template"] == chat.rendered
