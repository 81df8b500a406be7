"""Running the workflow: the frame of every job script (``jobs``) and the Snakemake runner DVC calls (``runner``).

Kept apart from ``mechatlas.cli`` so that a job script's code closure (its DVC deps) holds only the
frame, not every command of the CLI.
"""
