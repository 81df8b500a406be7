"""The base of every params.yaml section model, and the limits they share."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

#: Seeds must fit the generators they seed: numpy's legacy seeding takes at most 32 bits.
SEED_LIMIT = 2**32
#: Names that become folder names (models, planted organisms).
PATH_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)
