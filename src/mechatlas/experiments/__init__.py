"""The experiments: each composes ``mechatlas.interp`` into one study, and none imports another.

``registry`` lists them (title, methods, figures, claims) as plain data for the rules, the site and the
CLI; ``common`` turns params.yaml entries into models and prompts; each package (``refusal_direction``,
``dimensionality``) holds its stages (read, call, write), analyses, verdicts, tables and figures.
"""
