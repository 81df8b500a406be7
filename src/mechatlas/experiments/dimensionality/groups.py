"""Which saved prompts play which part in the dimensionality study.

The harmful class is the train and val harmful prompts the model refuses (the refusal stage's ``kept``
filter, as in Arditi et al., arXiv 2406.11717); the harmless class is the kept harmless prompts without
the ``alarming`` domain, which is held out as the over-refusal control (harmless but alarming-looking).
``prompt_groups`` returns the three as a ``PromptGroups``, dropping the ``kept`` filter for a class with
fewer than ``MIN_PER_CLASS`` kept prompts; ``MIN_PER_DOMAIN`` is how many prompts a harm domain needs for
its own direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from mechatlas.errors import ArtifactError
from mechatlas.experiments.common import held_out_groups

ALARMING = "alarming"  # the organism's over-refusal controls (label harmless); see mechatlas.organism.data


MIN_PER_CLASS = 8  # fewer prompts than this per class and the kept filter is dropped (see prompt_groups)


MIN_PER_DOMAIN = 4  # a harm domain needs this many prompts for its own direction and dimensionality


@dataclass(frozen=True)
class PromptGroups:
    """Which saved rows play which part (see the module docstring)."""

    harmful: pd.DataFrame
    harmless: pd.DataFrame
    alarming: pd.DataFrame
    kept_filter: dict[str, bool]  # per class: was the refusal stage's `kept` filter applied?

    @property
    def domains(self) -> list[str]:
        return sorted(self.harmful["domain"].unique())


def prompt_groups(index: pd.DataFrame, splits: Sequence[str] = ("train", "val")) -> PromptGroups:
    """Kept harmful prompts, kept harmless prompts without the held-out sets (the alarming controls and
    XSTest's safe prompts, ``held_out_groups``), and the alarming controls.

    A class with fewer than ``MIN_PER_CLASS`` kept prompts (a model that barely refuses) falls back to
    all its prompts, as the refusal stage's means do; ``kept_filter`` records which.
    """
    rows = index[index["split"].isin(splits)]
    held_out = pd.Series(held_out_groups(rows), index=rows.index).notna()  # also XSTest's safe prompts
    groups: dict[str, pd.DataFrame] = {}
    kept_filter: dict[str, bool] = {}
    for label in ("harmful", "harmless"):
        group = rows[(rows["label"] == label) & ~held_out]
        kept = group[group["kept"]]
        kept_filter[label] = len(kept) >= MIN_PER_CLASS
        groups[label] = kept if kept_filter[label] else group
        if len(groups[label]) < 4:
            raise ArtifactError(
                f"only {len(groups[label])} {label} prompts were saved by the refusal stage; the dimensionality "
                "estimators need at least 4 per class (raise refusal_direction.n_train or use a bigger prompt set)"
            )
    return PromptGroups(groups["harmful"], groups["harmless"], rows[rows["domain"] == ALARMING], kept_filter)
