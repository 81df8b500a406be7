"""Tiny random-weight checkpoints whose chat templates reproduce each family's documented format.

The templates are written here (not copied): each renders a user turn, an optional system turn, an
assistant turn and the generation prompt the way the family's published ``tokenizer_config.json`` does,
with the same special tokens, the same end-of-turn token and the same ``generation_config`` end tokens:

- ``qwen3``: ChatML; ``enable_thinking=False`` puts an empty ``<think>\\n\\n</think>\\n\\n`` after
  ``<|im_start|>assistant\\n``; generation ends on ``<|im_end|>`` or ``<|endoftext|>``.
- ``llama3_1`` / ``llama3_2``: a system header with ``Cutting Knowledge Date: December 2023`` and
  ``Today Date: {date_string}`` always comes first; 3.1 defaults the date to 26 Jul 2024, 3.2 reads the
  clock (``strftime_now``) when no date is given; turns end with ``<|eot_id|>``; generation ends on
  ``<|end_of_text|>``, ``<|eom_id|>`` or ``<|eot_id|>``.
- ``gemma2``: ``<start_of_turn>user ... <end_of_turn>``, the reply under ``model``; a system role raises;
  generation ends on ``<eos>`` or ``<end_of_turn>``.
- ``mistral``: ``<s>[INST] ... [/INST]`` (control tokens as in v0.3), replies end with ``</s>``.
- ``phi3``: ``<|user|>\\n ... <|end|>\\n<|assistant|>\\n``; generation ends on ``<|endoftext|>``,
  ``<|assistant|>`` or ``<|end|>``.
- ``r1_distill``: a DeepSeek-R1-distill-style template that always opens ``<think>\\n`` and has no switch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from checkpoints import SENTENCES, tiny_config

CORPUS = [*SENTENCES, "Today Date: 26 Jul 2024. Cutting Knowledge Date: December 2023"] * 4

QWEN3 = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' %}{{- '<|im_start|>user\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set content = message.content %}"
    "{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def _llama3(date_default: str) -> str:
    return (
        "{{- bos_token }}"
        "{%- if not date_string is defined %}" + date_default + "{%- endif %}"
        "{%- if messages[0]['role'] == 'system' %}"
        "{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}"
        "{%- else %}{%- set system_message = '' %}{%- endif %}"
        "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
        "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
        "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
        "{{- system_message }}{{- '<|eot_id|>' }}"
        "{%- for message in messages %}"
        "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
    )


LLAMA3_1 = _llama3("{%- set date_string = '26 Jul 2024' %}")
LLAMA3_2 = _llama3(
    "{%- if strftime_now is defined %}{%- set date_string = strftime_now('%d %b %Y') %}"
    "{%- else %}{%- set date_string = '26 Jul 2024' %}{%- endif %}"
)

GEMMA2 = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

MISTRAL = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + '[/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"
    "{% endfor %}"
)

PHI3 = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)

R1_DISTILL = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Family:
    name: str
    arch: str  # the transformers model type the checkpoint uses
    template: str
    specials: tuple[str, ...]  # special tokens, in id order after the byte-level base
    bos: str | None
    eos: str  # the tokenizer's eos
    generation_eos: tuple[str, ...]  # generation_config.json eos_token_id, as tokens
    end_of_turn: str  # the token the template writes after a reply
    reply_prefix: str  # what the generation prompt ends with (after thinking is handled)
    extra_tokens: tuple[str, ...] = ()  # added, not special (Qwen3's <think> tags)


FAMILIES = {
    f.name: f
    for f in (
        Family(
            "qwen3",
            "qwen3",
            QWEN3,
            ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            None,
            "<|im_end|>",
            ("<|im_end|>", "<|endoftext|>"),
            "<|im_end|>",
            "<|im_start|>assistant\n<think>\n\n</think>\n\n",
            ("<think>", "</think>"),
        ),
        *(
            Family(
                name,
                "llama",
                template,
                (
                    "<|begin_of_text|>",
                    "<|end_of_text|>",
                    "<|start_header_id|>",
                    "<|end_header_id|>",
                    "<|eom_id|>",
                    "<|eot_id|>",
                ),
                "<|begin_of_text|>",
                "<|eot_id|>",
                ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
                "<|eot_id|>",
                "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            )
            for name, template in (("llama3_1", LLAMA3_1), ("llama3_2", LLAMA3_2))
        ),
        Family(
            "gemma2",
            "gemma2",
            GEMMA2,
            ("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"),
            "<bos>",
            "<eos>",
            ("<eos>", "<end_of_turn>"),
            "<end_of_turn>",
            "<end_of_turn>\n<start_of_turn>model\n",
        ),
        Family(
            "mistral",
            "mistral",
            MISTRAL,
            ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
            "<s>",
            "</s>",
            ("</s>",),
            "</s>",
            "[/INST]",
        ),
        Family(
            "phi3",
            "phi3",
            PHI3,
            ("<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"),
            None,
            "<|endoftext|>",
            ("<|endoftext|>", "<|assistant|>", "<|end|>"),
            "<|end|>",
            "<|end|>\n<|assistant|>\n",
        ),
        Family(
            "r1_distill",
            "qwen2",
            R1_DISTILL,
            ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"),
            "<｜begin▁of▁sentence｜>",
            "<｜end▁of▁sentence｜>",
            ("<｜end▁of▁sentence｜>",),
            "<｜end▁of▁sentence｜>",
            "<｜Assistant｜><think>\n\n</think>\n\n",
            ("<think>", "</think>"),
        ),
    )
}


def _tokenizer(family: Family):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=list(family.specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    named = {"eos_token": family.eos, "pad_token": family.eos}
    if family.bos is not None:
        named["bos_token"] = family.bos
    others = [t for t in family.specials if t not in named.values()]
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        additional_special_tokens=others,
        clean_up_tokenization_spaces=False,
        **named,
    )
    if family.extra_tokens:
        wrapped.add_tokens(list(family.extra_tokens))
    wrapped.chat_template = family.template
    return wrapped


def make_family_checkpoint(name: str, folder: Path, seed: int = 0) -> Path:
    """A random-weight checkpoint of family ``name`` with its template, tokens and generation config."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    family = FAMILIES[name]
    tokenizer = _tokenizer(family)
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in family.specials}
    torch.manual_seed(seed)
    bos = ids[family.bos] if family.bos else None
    config = tiny_config(family.arch, len(tokenizer), ids[family.eos], bos, max_positions=256)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids[t] for t in family.generation_eos], pad_token_id=ids[family.eos]
    )
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "family.json").write_text(json.dumps({"family": name}))
    return folder
