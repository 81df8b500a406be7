"""Test-session set-up shared by tests/ and the doctests in src/.

Every function and dataclass of `mechatlas` has its annotations, tensor shapes included, checked at
runtime while the tests run: jaxtyping's import hook decorates them with beartype as they are imported.
It must be installed before the first `mechatlas` import, hence here, at the root.
"""

from jaxtyping import install_import_hook

install_import_hook("mechatlas", "beartype.beartype")
