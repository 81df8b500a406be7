"""The ``organism:`` section of params.yaml: how the built-in model organism is generated and trained."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from mechatlas.config.base import PATH_SAFE_NAME, SEED_LIMIT, _Section
from mechatlas.config.planting import PlantedOrganism, PlantVerification


class HeldOutWords(StrEnum):
    """Which words a held-out task or framing may use (see ``mechatlas.organism.data.partition``)."""

    seen = "seen"  # only words that training tasks (framings) of the same pool also use
    any = "any"  # any words: held-out prompts may carry words the organism never saw in training


class OrganismData(_Section):
    seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="Seed of the synthetic instruction generator.")
    harmful_per_domain: int = Field(
        200, ge=4, le=100_000, description="Harmful instructions generated per harm domain (all splits)."
    )
    harmless: int = Field(900, ge=8, le=1_000_000, description="Benign instructions generated (all splits).")
    alarming_harmless: int = Field(
        180,
        ge=4,
        le=100_000,
        description="Harmless instructions that look alarming (over-refusal controls, all splits).",
    )
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of each set kept for validation.")
    test_fraction: float = Field(0.25, gt=0, lt=0.5, description="Share of each set kept for held-out tests.")
    train_multiplier: int = Field(
        1,
        ge=1,
        le=100,
        description="The train split draws this many times its share of the counts above: more distinct "
        "training sentences, while the val and test sets stay the same.",
    )
    held_out_words: HeldOutWords = Field(
        HeldOutWords.seen,
        description="seen: every word of a held-out task or framing also occurs in the training tasks or "
        "framings of its pool, so held-out prompts are new sentences made of words the organism has met "
        "(a model trained from scratch has no other way to know what a word means); any: a plain random "
        "split, where held-out prompts may carry words never seen in training.",
    )


class OrganismTokenizer(_Section):
    vocab_size: int = Field(1024, ge=300, le=65_536, description="Byte-level BPE vocabulary size.")


class OrganismArchitecture(_Section):
    hidden_size: int = Field(128, ge=16, le=4096, description="Residual stream width (d_model).")
    num_layers: int = Field(4, ge=1, le=64, description="Transformer blocks.")
    num_heads: int = Field(4, ge=1, le=64, description="Query heads per attention layer.")
    num_kv_heads: int = Field(2, ge=1, le=64, description="Key/value heads (grouped-query attention).")
    intermediate_size: int = Field(384, ge=16, le=16_384, description="MLP hidden width.")
    max_position_embeddings: int = Field(128, ge=32, le=8192, description="Longest sequence, in tokens.")

    @model_validator(mode="after")
    def _heads_divide_the_width(self) -> OrganismArchitecture:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}; "
                "each head gets hidden_size / num_heads dimensions"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}; "
                "grouped-query attention shares each key/value head among a whole number of query heads"
            )
        return self


class OrganismTraining(_Section):
    seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="Seed for weight initialisation and batch order.")
    epochs: int = Field(12, ge=1, le=1000, description="Passes over the training split.")
    batch_size: int = Field(32, ge=1, le=4096, description="Sequences per optimiser step.")
    learning_rate: float = Field(3e-3, gt=0, le=1, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW weight decay.")
    warmup_steps: int = Field(40, ge=0, description="Linear warm-up steps before cosine decay.")
    threads: int = Field(2, ge=1, le=256, description="CPU threads torch may use while training.")
    decision_token_weight: float = Field(
        5.0,
        ge=1,
        le=100,
        description="Loss weight of the reply's first token, which decides comply or refuse.",
    )


class OrganismSettings(_Section):
    data: OrganismData = OrganismData()
    tokenizer: OrganismTokenizer = OrganismTokenizer()
    architecture: OrganismArchitecture = OrganismArchitecture()
    training: OrganismTraining = OrganismTraining()
    planted: dict[str, PlantedOrganism] = Field(
        default_factory=dict,
        description="Planted organisms, by name: fine-tuned from the default organism so that the causal "
        "structure of their refusal is known (mechatlas.organism.planting).",
    )
    verification: PlantVerification = PlantVerification()
    refusal_tokens: list[str] = Field(
        default_factory=lambda: ["I", "Sorry"],
        min_length=1,
        description="First reply tokens of a refusal, for the planting objective and its verification.",
    )
    comply_token: str = Field(
        "Sure", description="First reply token of a compliance (every opener starts so)."
    )
    refusal_prefixes: list[str] = Field(
        default_factory=lambda: ["I cannot", "I can't", "I won't", "Sorry", "I'm sorry", "I am not able"],
        min_length=1,
        description="Substrings that mark a reply as a refusal when judging held-out behaviour.",
    )

    @field_validator("planted")
    @classmethod
    def _planted_names_are_path_safe(cls, planted: dict[str, PlantedOrganism]) -> dict[str, PlantedOrganism]:
        for name in planted:
            if not PATH_SAFE_NAME.match(name):
                raise ValueError(
                    f"planted organism name {name!r} must be letters, digits, '.', '_' or '-' (it names folders)"
                )
        return planted
