"""Reading what earlier stages saved: the refusal-direction stage's activations and selected direction.

``SavedActivations`` / ``read_saved_activations`` open ``data/activations/<model>/`` (one array per label
and split, ``(prompt, position, layer, d_model)``, rows listed in ``index.parquet``); ``read_selection``
reads the selected position, layer and direction; ``read_instruction_activations`` reads this study's own
last-instruction-token activations (``INSTRUCTION_FILE``) for a slice of the index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.errors import ArtifactError
from mechatlas.experiments.common import read_direction
from mechatlas.interp.activations import ActivationStore
from mechatlas.io import load_npy

INSTRUCTION_FILE = "instruction_token.npy"


# --- reading what the refusal-direction stage saved ---------------------------------------------------


def read_saved_activations(act_dir: Path) -> ActivationStore:
    """Open ``data/activations/<model>/``, the refusal-direction experiment's activation store."""
    return ActivationStore.open(
        act_dir,
        "run the refusal-direction activations stage first "
        "(`mechatlas refusal activations` or `snakemake data/activations/<model>`)",
    )


def read_selection(refusal_dir: Path) -> dict[str, Any]:
    """The refusal stage's selected (position, layer) and its direction (float64, unnormalised)."""
    direction, info = read_direction(refusal_dir)
    return {**info, "direction": direction}


def read_instruction_activations(path: Path, rows: pd.DataFrame) -> Float[Tensor, "n layer d_model"]:
    if not path.exists():
        raise ArtifactError(f"{path}: missing; run `mechatlas dimensionality instruction-activations` first")
    array = load_npy(path, "run `mechatlas dimensionality instruction-activations` again")
    return torch.from_numpy(np.ascontiguousarray(array[rows["global"].to_numpy()]))
