"""Chat prompts exactly as each model family expects them, and where its replies stop.

Arditi et al. 2024 (arXiv 2406.11717) read the residual stream at the chat template's post-instruction
tokens, so the template must be the family's own, applied the way the family applies it: thinking
switched off where a template has the switch (Qwen3's ``enable_thinking=False``, whose empty
``<think>`` block then belongs to the post-instruction tokens) or closed empty where it opens one
unasked (DeepSeek-R1 distills); the date pinned where a template reads one (Llama 3.x), so prompts do
not change with the calendar; no system prompt unless one is named; and the resulting ids checked once
against ``apply_chat_template(tokenize=True)``. A reply stops at any end token: the checkpoint's
generation-config end tokens, the tokenizer's eos and the template's end-of-turn token.
``ChatFormat.record()`` is what a result's provenance keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mechatlas.errors import MechatlasError

#: The date pinned into templates that read one (Llama 3.x's ``date_string``). It is Llama 3.1's own
#: default, so a 3.1 prompt is what the template gives with no date; 3.2 would otherwise read the clock.
DEFAULT_CHAT_DATE = "26 Jul 2024"

# --- chat formats: each family's template, exactly as the family expects ------------------------------

#: A user message no tokenizer merges with the template around it; only used to find the suffix.
SENTINEL = "MECHATLAS SENTINEL INSTRUCTION"
#: An assistant reply used only to find the template's end-of-turn token.
REPLY_SENTINEL = "MECHATLAS SENTINEL REPLY"
#: Appended when a template opens a thinking block it cannot be told to skip (DeepSeek-R1 distills):
#: the block is closed empty, the same shape as Qwen3's ``enable_thinking=False``.
CLOSE_THINKING = "\n</think>\n\n"


class TemplateError(MechatlasError):
    """A chat template whose prompts cannot be built or checked as the model's family expects."""


@dataclass(frozen=True)
class ChatFormat:
    """How user texts become prompts for one tokenizer's chat template, and where replies stop.

    ``template_kwargs`` go to ``apply_chat_template`` (``enable_thinking=False`` where the template has
    the switch, ``date_string`` where it reads a date); ``system_prompt`` is sent only when set;
    ``suffix`` is text appended after the template's generation prompt (an empty thinking block that
    mechatlas closes itself). ``stop_token_ids`` are every token that ends a reply: the checkpoint's
    generation end tokens, the tokenizer's eos and the template's end-of-turn token. ``record()`` is
    what provenance keeps.
    """

    template_kwargs: tuple[tuple[str, Any], ...] = ()
    system_prompt: str | None = None
    date: str | None = None  # the pinned date, when the template reads one
    thinking: str = "none"  # none | disabled (template switch) | closed (empty block appended)
    suffix: str = ""
    stop_token_ids: tuple[int, ...] = ()
    stop_tokens: tuple[str, ...] = ()
    rendered: str = ""  # the template rendered around SENTINEL, the suffix included
    template_sha256: str = ""
    template_system_text: bool = False  # the template writes a system turn of its own (Llama 3.x, Qwen2.5)

    def messages(self, text: str) -> list[dict[str, str]]:
        system = [] if self.system_prompt is None else [{"role": "system", "content": self.system_prompt}]
        return [*system, {"role": "user", "content": text}]

    def render(self, tokenizer: Any, texts: Sequence[str]) -> list[str]:
        kwargs = dict(self.template_kwargs)
        return [
            _apply_template(tokenizer, self.messages(t), add_generation_prompt=True, **kwargs) + self.suffix
            for t in texts
        ]

    def record(self) -> dict[str, Any]:
        """The chat settings a result record's provenance keeps (JSON-ready)."""
        return {
            "rendered_template": self.rendered,
            "template_sha256": self.template_sha256,
            "template_kwargs": dict(self.template_kwargs),
            "system_prompt": self.system_prompt,
            "date": self.date,
            "thinking": self.thinking,
            "suffix": self.suffix,
            "stop_token_ids": list(self.stop_token_ids),
            "stop_tokens": list(self.stop_tokens),
            "template_system_text": self.template_system_text,
        }


def _apply_template(tokenizer: Any, messages: list[dict[str, str]], **kwargs: Any) -> str:
    from jinja2 import TemplateError as JinjaError

    try:
        return str(tokenizer.apply_chat_template(messages, tokenize=False, **kwargs))
    except JinjaError as exc:
        roles = "/".join(m["role"] for m in messages)
        raise TemplateError(
            f"the chat template refused a {roles} conversation ({exc}); if it has no system role, set the "
            "model's `system_prompt: null` in params.yaml"
        ) from None


def _template_source(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: the default one renders chats
        template = template.get("default", next(iter(template.values()), ""))
    return str(template or "")


def chat_format(
    tokenizer: Any,
    *,
    system_prompt: str | None = None,
    date: str = DEFAULT_CHAT_DATE,
    generation_eos: int | Sequence[int] | None = None,
) -> ChatFormat:
    """The chat format of ``tokenizer``'s template: thinking off, date pinned, stop tokens found.

    ``generation_eos`` is the checkpoint's ``generation_config.eos_token_id`` (one id or several); the
    stop set is its union with the tokenizer's eos and the template's end-of-turn token (the first
    special token after an assistant reply). A template that reads today's date without taking a
    ``date_string`` is refused: its prompts would change with the calendar.
    """
    import hashlib

    source = _template_source(tokenizer)
    kwargs: dict[str, Any] = {}
    thinking = "none"
    if "enable_thinking" in source:
        kwargs["enable_thinking"] = False
        thinking = "disabled"
    reads_date = "date_string" in source
    if reads_date:
        kwargs["date_string"] = date
    elif "strftime_now" in source:
        raise TemplateError(
            "the chat template reads today's date (strftime_now) and takes no date_string, so its prompts "
            "change with the calendar; give the model a template that takes date_string"
        )
    plain = ChatFormat(tuple(sorted(kwargs.items())), system_prompt)
    (prompt,) = plain.render(tokenizer, [SENTINEL])
    tail = prompt[prompt.rfind(SENTINEL) + len(SENTINEL) :] if SENTINEL in prompt else ""
    suffix = ""
    if tail.rfind("<think>") > tail.rfind("</think>"):  # an open thinking block it cannot switch off
        suffix, thinking = CLOSE_THINKING, "closed"
    ids = _stop_ids(tokenizer, source, plain, generation_eos)
    return ChatFormat(
        template_kwargs=plain.template_kwargs,
        system_prompt=system_prompt,
        date=date if reads_date else None,
        thinking=thinking,
        suffix=suffix,
        stop_token_ids=ids,
        stop_tokens=tuple(tokenizer.convert_ids_to_tokens(list(ids))),
        rendered=prompt + suffix,
        template_sha256=hashlib.sha256(source.encode()).hexdigest(),
        # With no system prompt of ours, any "system" before the user's text is the template's own.
        template_system_text=system_prompt is None and "system" in prompt[: prompt.find(SENTINEL)].lower(),
    )


def _stop_ids(
    tokenizer: Any, source: str, plain: ChatFormat, generation_eos: int | Sequence[int] | None
) -> tuple[int, ...]:
    ids: list[int] = []
    for value in (generation_eos, tokenizer.eos_token_id, _end_of_turn_id(tokenizer, plain)):
        for token in [value] if isinstance(value, int) else list(value or []):
            if token is not None and int(token) not in ids:
                ids.append(int(token))
    return tuple(ids)


def _end_of_turn_id(tokenizer: Any, plain: ChatFormat) -> int | None:
    """The first special token the template writes after an assistant reply (``<|im_end|>``, ``<|eot_id|>``,
    ``<end_of_turn>``, ``<|end|>``, ``</s>``), or None when it writes none."""
    conversation = [*plain.messages(SENTINEL), {"role": "assistant", "content": REPLY_SENTINEL}]
    try:
        text = _apply_template(tokenizer, conversation, **dict(plain.template_kwargs))
    except TemplateError:
        return None
    if REPLY_SENTINEL not in text:
        return None
    after = text[text.rfind(REPLY_SENTINEL) + len(REPLY_SENTINEL) :]
    special = set(tokenizer.all_special_ids) | {
        i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)
    }
    for token in tokenizer(after, add_special_tokens=False)["input_ids"][:3]:
        if token in special:
            return int(token)
    return None


def check_chat_format(tokenizer: Any, chat: ChatFormat, texts: Sequence[str] = ("Hello", SENTINEL)) -> None:
    """Check that our prompt ids equal ``apply_chat_template(tokenize=True)``'s (up to the suffix we add).

    Raises ``TemplateError`` naming the first differing token, so a tokenizer whose text round trip
    differs from its own chat tokenization is caught once per model, before anything is measured.
    """
    kwargs = dict(chat.template_kwargs)
    for text, prompt in zip(texts, chat.render(tokenizer, texts), strict=True):
        ours = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        reference = tokenizer.apply_chat_template(
            chat.messages(text), tokenize=True, add_generation_prompt=True, **kwargs
        )
        if not isinstance(reference, list):  # transformers 5 returns a BatchEncoding
            reference = reference["input_ids"]
        reference = list(reference)
        if chat.suffix:
            # Our suffix may merge with the template's last token; everything before it must agree.
            reference = reference[:-1]
            ours = ours[: len(reference)]
        if ours != reference:
            at = next((i for i, (a, b) in enumerate(zip(ours, reference, strict=False)) if a != b), None)
            at = min(len(ours), len(reference)) if at is None else at
            raise TemplateError(
                f"prompt token ids differ from apply_chat_template(tokenize=True)'s at position {at} "
                f"({ours[at : at + 3]} vs {reference[at : at + 3]}; {len(ours)} vs {len(reference)} tokens) "
                f"for the message {text!r}; mechatlas cannot build this model's prompts exactly"
            )


def chat_prompts(tokenizer: Any, texts: list[str], chat: ChatFormat | None = None) -> list[str]:
    """Wrap user texts in the model's chat template, ending where the assistant's reply begins.

    ``chat`` defaults to ``chat_format(tokenizer)``: thinking off, the date pinned, no system prompt.
    """
    return (chat or chat_format(tokenizer)).render(tokenizer, texts)
