"""File-level entry points of the organism stages, shared by Snakemake scripts and the CLI.

Each reads its inputs, calls the library, and writes its outputs atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mechatlas.config import ORGANISM, Params
from mechatlas.errors import ArtifactError, ConfigError
from mechatlas.io import write_jsonl, write_text
from mechatlas.organism.data import Instruction, generate_instructions
from mechatlas.organism.vocabulary import load_vocabulary
from mechatlas.paths import HANDWRITTEN_PROMPTS, ORGANISM_INSTRUCTIONS, ORGANISM_PROMPTS, ORGANISM_VOCABULARY
from mechatlas.prompts import read_jsonl, validate_record, write_records


def write_instructions(
    params: Params,
    instructions_path: Path = ORGANISM_INSTRUCTIONS,
    prompts_path: Path = ORGANISM_PROMPTS,
    vocabulary_path: Path = ORGANISM_VOCABULARY,
) -> int:
    """Generate the organism's instructions from a vocabulary file; also write their prompt records (the
    experiments' prompt set)."""
    instructions = generate_instructions(params.organism.data, load_vocabulary(vocabulary_path))
    write_jsonl(
        instructions_path,
        [{"record": i.record.to_dict(), "response": i.response, "framing": i.framing} for i in instructions],
    )
    write_records(prompts_path, [i.record for i in instructions])
    return len(instructions)


def read_instructions(path: Path = ORGANISM_INSTRUCTIONS) -> list[Instruction]:
    if not path.exists():
        raise ArtifactError(f"{path}: missing; run `mechatlas organism data` first")
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            obj = json.loads(line)
            record = validate_record(obj["record"], f"{path}:{lineno}")
            out.append(Instruction(record, str(obj["response"]), str(obj["framing"])))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ArtifactError(
                f"{path}:{lineno}: corrupted ({exc}); delete it and rerun `mechatlas organism data`"
            ) from None
    return out


def train(params: Params, instructions_path: Path, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    from mechatlas.organism.train import train_organism

    return train_organism(read_instructions(instructions_path), params.organism, out_dir, progress=progress)


def behaviour(
    params: Params,
    instructions_path: Path,
    model_dir: Path,
    out_path: Path,
    handwritten_path: Path = HANDWRITTEN_PROMPTS,
) -> dict[str, Any]:
    """Held-out refusal rates of the trained organism, written in the result contract.

    Two prompt sets: the generated held-out test split (in distribution: unseen tasks in unseen framings),
    and the hand-written prompts in data/prompts (out of distribution: other wording altogether). Beside
    both, the same rates for a bag-of-words control trained on the same training prompts.
    """
    from mechatlas.interp.models import load_model
    from mechatlas.organism.behaviour import held_out_behaviour, lexical_control

    instructions = read_instructions(
        instructions_path
    )  # the inputs are read and checked before the model loads
    handwritten = read_jsonl(handwritten_path)
    model = load_model(model_dir, device=params.run.device, dtype=params.run.dtype)
    records = [i.record for i in instructions]
    result = held_out_behaviour(
        model,
        records,
        params.organism.refusal_prefixes,
        batch_size=params.run.batch_size,
        framings={i.record.id: i.framing for i in instructions},
    )
    result["handwritten"] = held_out_behaviour(
        model, handwritten, params.organism.refusal_prefixes, batch_size=params.run.batch_size
    )
    result["lexical_control"] = lexical_control(
        [r for r in records if r.split == "train"], {"refusal_rate": records, "handwritten": handwritten}
    )
    training = json.loads((model_dir / "training.json").read_text())
    curve = "".join(f"{step},{loss}\n" for step, loss in enumerate(training.get("loss_curve", []), start=1))
    write_text(out_path.with_name("training_loss.csv"), "step,loss\n" + curve)  # the DVC plot of training
    result["training"] = {k: v for k, v in training.items() if k != "loss_curve"}
    result["judge"] = "substring: a reply containing any of organism.refusal_prefixes is a refusal"
    _write_record(params, out_path, result, "organism_behaviour", ORGANISM, {}, model.chat_format.record())
    return result


def _write_record(
    params: Params,
    out_path: Path,
    result: dict[str, Any],
    stage: str,
    model_id: str,
    seeds: dict[str, int],
    model_chat: dict[str, Any] | None = None,
    headline: Path | None = None,
) -> None:
    """Write an organism stage's result with its provenance: the organism and run sections, the organism's
    data and training seeds followed by ``seeds``, and ``stage``, the DVC stage that writes it; ``headline``
    as ``write_result`` takes it."""
    from mechatlas.records import provenance, write_result

    write_result(
        out_path,
        metrics=result,
        replicates=[],
        methods=[],
        provenance=provenance(
            params,
            sections=["organism", "run"],
            model_name=ORGANISM,  # a planted organism descends from it; its folder is then the id
            model_id=model_id,
            model_revision=None,
            target=str(out_path),
            model_chat=model_chat,
            seeds={"data": params.organism.data.seed, "training": params.organism.training.seed, **seeds},
            stage=stage,
        ),
        headline=headline,
    )


def planted_headline(record: Path) -> Path:
    """A planted organism's headline file: ``<name>.headline.json`` beside its verification record (the
    organisms share one folder, so one ``headline.json`` there would be overwritten by each)."""
    return record.with_name(f"{record.stem}.headline.json")


def _planted_spec(params: Params, name: str) -> None:
    if name not in params.organism.planted:
        known = ", ".join(sorted(params.organism.planted)) or "none"
        raise ConfigError(f"params.yaml: no `organism.planted.{name}`; add it or pick one of: {known}")


def plant(
    params: Params,
    name: str,
    instructions_path: Path,
    base_dir: Path,
    out_dir: Path,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune the default organism into planted organism ``name`` and save its checkpoint."""
    import sys
    import time

    from mechatlas.organism.planting import plant as plant_organism
    from mechatlas.organism.planting import save_planted

    _planted_spec(params, name)
    if not (base_dir / "model.safetensors").exists():
        raise ArtifactError(f"{base_dir}: no trained organism; run `mechatlas organism train` first")
    t0 = time.time()
    planted = plant_organism(
        base_dir, read_instructions(instructions_path), params.organism, name, progress=progress
    )
    save_planted(planted, out_dir)
    # Wall time to the log only, so the same inputs give a byte-identical checkpoint folder.
    print(f"planted {name} in {time.time() - t0:.1f} s", file=sys.stderr)
    return planted.summary


def verify(
    params: Params, name: str, instructions_path: Path, model_dir: Path, out_path: Path
) -> dict[str, Any]:
    """Measure planted organism ``name``'s planted property and its held-out behaviour; write the record."""
    from mechatlas.interp.models import load_model
    from mechatlas.organism.behaviour import held_out_behaviour
    from mechatlas.organism.verification import verify_planted

    _planted_spec(params, name)
    instructions = read_instructions(instructions_path)
    result = verify_planted(model_dir, instructions, params.organism, name)
    model = load_model(model_dir, device=params.run.device, dtype=params.run.dtype)
    behaviour = held_out_behaviour(
        model,
        [i.record for i in instructions],
        params.organism.refusal_prefixes,
        batch_size=params.run.batch_size,
        framings={i.record.id: i.framing for i in instructions},
    )
    result["held_out_behaviour"] = {
        k: behaviour[k] for k in ("refusal_rate", "refusal_rate_by_framing", "per_domain")
    }
    seeds = {
        "planting": params.organism.planted[name].seed,
        "verification": params.organism.verification.seed,
    }
    _write_record(
        params,
        out_path,
        result,
        "organism_verify",
        str(model_dir),
        seeds,
        headline=planted_headline(out_path),
    )
    return result
