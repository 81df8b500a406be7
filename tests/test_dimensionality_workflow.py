"""The dimensionality stage reuses upstream work: a dimensionality-only setting reruns only its own jobs.

Instead of running the study, every output of the DAG is stood in for by an empty file and marked up to
date with ``snakemake --touch`` (which records the params each job was planned with). A dry run with a
changed setting then shows exactly which jobs Snakemake would rerun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from test_workflow import planned_jobs, scratch_copy, snakemake

from conftest import deep_update, repo_params

pytestmark = pytest.mark.xdist_group("dimensionality_workflow")  # its own worker, beside the smoke run

DIMENSIONALITY_RULES = {
    "dimensionality_instruction_activations",
    "dimensionality_geometry",
    "dimensionality_causal",
    "dimensionality_optimised",
    "dimensionality_metrics",
    "dimensionality_figures",
}
# Downstream readers of every result (the site) rerun whenever any result may change.
SITE_RULES = {"lit_check", "site_pages", "site_build", "all"}


@pytest.fixture(scope="module")
def up_to_date(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy whose every output exists (empty) and is recorded as up to date."""
    root = scratch_copy(tmp_path_factory.mktemp("dimensionality_dag"), repo_params())
    summary = snakemake(root, "--summary", "all")
    assert summary.returncode == 0, summary.stderr[-3000:]
    for line in summary.stdout.splitlines()[1:]:
        path = root / line.split("\t")[0]
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:  # directory() outputs: checkpoints, activation folders, generated pages
            path.mkdir(parents=True, exist_ok=True)
    touched = snakemake(root, "--touch", "all")
    assert touched.returncode == 0, touched.stderr[-3000:]
    return root  # (that a second dry run then has nothing to do is test_workflow's business)


def jobs_after(root: Path, change: dict[str, Any], name: str) -> dict[str, int]:
    params = yaml.safe_load((root / "params.yaml").read_text())
    changed = root / f"params.{name}.yaml"
    changed.write_text(yaml.safe_dump(deep_update(params, change)))
    done = snakemake(root, "all", "--dry-run", "--configfile", str(changed))
    assert done.returncode == 0, done.stderr[-3000:]
    return planned_jobs(done.stdout + done.stderr)


def test_an_estimator_setting_reruns_the_dimensionality_estimates_and_nothing_upstream(
    up_to_date: Path,
) -> None:
    jobs = set(jobs_after(up_to_date, {"dimensionality": {"probe_l2": 0.2}}, "probe_l2"))
    assert {"dimensionality_geometry", "dimensionality_metrics", "dimensionality_figures"} <= jobs
    assert jobs <= DIMENSIONALITY_RULES | SITE_RULES, (
        f"upstream jobs would rerun: {jobs - DIMENSIONALITY_RULES - SITE_RULES}"
    )
    assert "dimensionality_instruction_activations" not in jobs, (
        "activations do not depend on estimator settings"
    )


def test_a_verdict_threshold_reruns_only_the_metrics_and_figures(up_to_date: Path) -> None:
    jobs = set(jobs_after(up_to_date, {"dimensionality": {"transfer_gap": 0.3}}, "transfer_gap"))
    assert jobs - SITE_RULES == {"dimensionality_metrics", "dimensionality_figures"}


def test_an_optimisation_setting_reruns_only_the_optimised_stage_and_what_reads_it(up_to_date: Path) -> None:
    jobs = set(jobs_after(up_to_date, {"dimensionality": {"optimisation": {"steps": 3}}}, "optimisation"))
    assert jobs - SITE_RULES == {
        "dimensionality_optimised",
        "dimensionality_metrics",
        "dimensionality_figures",
    }


def test_a_refusal_setting_the_dimensionality_stage_does_not_read_leaves_it_alone(up_to_date: Path) -> None:
    jobs = set(jobs_after(up_to_date, {"refusal_direction": {"max_new_tokens": 12}}, "max_new_tokens"))
    assert "refusal_evaluate" in jobs
    assert not jobs & DIMENSIONALITY_RULES
