"""Reading what earlier stages saved: the refusal-direction stage's activations and selected direction.

``SavedActivations`` / ``read_saved_activations`` open ``data/activations/<model>/`` (one array per label
and split, ``(prompt, position, layer, d_model)``, rows listed in ``index.parquet``); ``read_selection``
reads the selected position, layer and direction; ``read_instruction_activations`` reads this study's own
last-instruction-token activations (``INSTRUCTION_FILE``) for a slice of the index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.errors import ArtifactError

INSTRUCTION_FILE = "instruction_token.npy"


# --- reading what the refusal-direction stage saved ---------------------------------------------------


@dataclass(frozen=True)
class SavedActivations:
    """The refusal-direction stage's activations: ``(prompt, position, layer, d_model)`` per file."""

    folder: Path
    index: pd.DataFrame  # one row per saved prompt, in a fixed global order (column `global`)
    positions: tuple[int, ...]  # offsets from the end of the prompt, e.g. (-5, ..., -1)
    position_tokens: tuple[str, ...]
    n_layers: int
    d_model: int

    def resid(self, rows: pd.DataFrame, position_index: int) -> Float[Tensor, "n layer d_model"]:
        """Activations of ``rows`` (a slice of ``index``) at one position, all layers, in float32."""
        out = np.empty((len(rows), self.n_layers, self.d_model), dtype=np.float32)
        for (label, split), group in rows.groupby(["label", "split"], sort=False):
            array = np.load(self.folder / f"{label}_{split}.npy", mmap_mode="r")
            where = rows.index.get_indexer(group.index)
            out[where] = array[group["row"].to_numpy(), position_index]
        return torch.from_numpy(out)


def read_saved_activations(act_dir: Path) -> SavedActivations:
    """Open ``data/activations/<model>/`` as written by ``refusal_direction.extract_activations``."""
    meta_path, index_path = act_dir / "meta.json", act_dir / "index.parquet"
    for path in (meta_path, index_path):
        if not path.exists():
            raise ArtifactError(
                f"{path}: missing; run the refusal-direction activations stage first "
                "(`mechatlas refusal activations` or `snakemake data/activations/<model>`)"
            )
    meta = json.loads(meta_path.read_text())
    index = pd.read_parquet(index_path).reset_index(drop=True)
    index["global"] = np.arange(len(index))
    missing = {"id", "label", "split", "domain", "text", "row", "kept"} - set(index.columns)
    if missing:
        raise ArtifactError(
            f"{index_path}: no column(s) {sorted(missing)}; rerun the refusal activations stage"
        )
    return SavedActivations(
        folder=act_dir,
        index=index,
        positions=tuple(meta["positions"]),
        position_tokens=tuple(meta["position_tokens"]),
        n_layers=len(meta["layers"]),
        d_model=int(meta["d_model"]),
    )


def read_selection(refusal_dir: Path) -> dict[str, Any]:
    """The refusal stage's selected (position, layer) and its direction (float64, unnormalised)."""
    from safetensors.torch import load_file

    info_path, tensors_path = refusal_dir / "direction.json", refusal_dir / "direction.safetensors"
    for path in (info_path, tensors_path):
        if not path.exists():
            raise ArtifactError(f"{path}: missing; run `mechatlas refusal select` first")
    info = json.loads(info_path.read_text())
    info["direction"] = load_file(str(tensors_path))["direction"]
    return dict(info)


def read_instruction_activations(path: Path, rows: pd.DataFrame) -> Float[Tensor, "n layer d_model"]:
    if not path.exists():
        raise ArtifactError(f"{path}: missing; run `mechatlas dimensionality instruction-activations` first")
    array = np.load(path, mmap_mode="r")
    return torch.from_numpy(np.ascontiguousarray(array[rows["global"].to_numpy()]))
