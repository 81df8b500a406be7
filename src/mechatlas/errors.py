"""Errors meant for people.

Every error the user can cause (a bad config value, a malformed prompt file, missing weights) is a
``MechatlasError``. Its message names the file, key or line, and says how to fix it. The CLI prints
the message without a traceback and exits non-zero.
"""

from __future__ import annotations


class MechatlasError(Exception):
    """A problem the user can fix; the message says where it is and how."""


class ConfigError(MechatlasError):
    """An invalid value in params.yaml (or another config file)."""


class PromptSchemaError(MechatlasError):
    """A prompt record that does not follow the DESIGN.md schema."""


class ModelLoadError(MechatlasError):
    """Model weights or tokenizer that cannot be loaded (missing offline, unsafe format, unsupported)."""


class DatasetLoadError(MechatlasError):
    """A public prompt set that cannot be read (missing offline, unknown columns)."""


class ArtifactError(MechatlasError):
    """A pipeline artefact that is missing or corrupted; rerun the stage that makes it."""


class LiteratureError(MechatlasError):
    """A literature file (references.bib, taxonomy.yaml, a paper YAML) that cannot be used as it is."""
