"""The survey site: MkDocs Material pages generated from the literature and the results, and the blog.

The site reads results; results never read the site. The pieces, in the order data flows through them:

- ``records``: result records read whole (numbers, claims, provenance, figures, what dvc.lock recorded);
- ``tables``: any record's numbers as Markdown tables with CIs, and each experiment's headline (made by
  the function ``mechatlas.experiments.registry`` names for it: the site names no experiment itself);
- ``context``, ``literature_pages``, ``result_pages``, ``dashboard``: one page per method, paper and result, the survey
  tree and the replication dashboard; ``pages`` writes them to ``reports/generated/``
  (``write_site_pages``), with the paragraphs that are not data read from ``prose/*.md``;
- ``citations`` and ``sources``: ``[@key]`` citations and ``{{ metric(...) }}`` macros in the hand-written
  pages and posts of ``pages/``, expanded when the pages are generated and written into the docs folder;
- ``glossary``: hover definitions on every page and the Glossary page;
- ``build``: the literature check stamp, the builders' derived configuration, ``mkdocs build --strict``
  or ``zensical build`` on the same docs folder, and a local server;
- ``text``: escaping, so contributed text always shows literally.

``mechatlas site pages|build|serve`` (``mechatlas.site.cli``) wraps them; Snakemake runs them last.
"""

from __future__ import annotations

from mechatlas.site.citations import SiteError
from mechatlas.site.pages import write_site_pages

__all__ = ["SiteError", "write_site_pages"]
