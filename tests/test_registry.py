"""The experiment registry: lookups, a toy experiment that gets its page with no site code of its own, and
agreement with what the rules make and what the verdicts judge."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from mechatlas.errors import ConfigError
from mechatlas.experiments import registry
from mechatlas.experiments.registry import ClaimRef, Experiment
from mechatlas.site.pages import write_site_pages
from site_fixture import build_fixture_project, png, provenance, rate, write_json

from conftest import REPO

TOY = "toy_probe"
TOY_RECORD = f"data/results/{TOY}/tiny/metrics.json"


def toy_headline(metrics: Mapping[str, Any]) -> list[str]:
    """The toy experiment's headline: its one accuracy, as the site would show any experiment's."""
    accuracy = metrics["probe_accuracy"]
    return [f"Probe accuracy on held-out prompts: **{accuracy['value']:.2f}** (n = {accuracy['n']}).", ""]


@pytest.fixture
def toy() -> Iterator[Experiment]:
    experiment = registry.register(
        Experiment(
            name=TOY,
            title="Toy linear probe",
            summary="A linear probe for refusal, registered by the tests.",
            methods=("child-method",),
            figures=("probe_accuracy",),
            claims=(ClaimRef("alpha2024first", "alpha-claim"),),
            headline=f"{__name__}:toy_headline",
        )
    )
    try:
        yield experiment
    finally:
        registry.unregister(TOY)


def test_a_registered_experiment_gets_its_page_with_no_site_code_of_its_own(
    tmp_path: Path, toy: Experiment
) -> None:
    project = build_fixture_project(tmp_path)
    write_json(
        project / TOY_RECORD,
        {
            "metrics": {"probe_accuracy": rate(45, 50)},
            "replicates": [{"paper": "alpha2024first", "claim": "alpha-claim", "verdict": "partially"}],
            "methods": list(toy.methods),
            "provenance": provenance(TOY_RECORD),
        },
    )
    figures = project / "reports/figures" / TOY / "tiny"
    figures.mkdir(parents=True)
    for figure in toy.figures:
        (figures / f"{figure}.png").write_bytes(png())

    written = write_site_pages(
        literature=project / "literature",
        results_root=project / "data/results",
        docs_dir=project / "reports",
        project_root=project,
    )

    page = f"generated/results/{TOY}/tiny/index.md"
    assert page in written
    text = (project / "reports" / page).read_text()
    assert text.split("---\n", 2)[-1].lstrip().startswith("# Toy linear probe on tiny\n")
    assert "## Headline\n\nProbe accuracy on held-out prompts: **0.90** (n = 50)." in text
    assert f"](../../../../figures/{TOY}/tiny/probe_accuracy.png)" in text
    index = (project / "reports/generated/results/index.md").read_text()
    assert "Toy linear probe on tiny" in index
    # No site module names an experiment: the page above came from the registry alone.
    named = [e.name for e in registry.experiments(per_model=True)]
    for source in sorted((REPO / "src/mechatlas/site").rglob("*.py")):
        code = source.read_text()
        assert not [name for name in named if name in code], f"{source} names an experiment"


def test_an_unknown_experiment_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown experiment `nope`: the registered experiments are .*"):
        registry.get("nope")
    assert registry.find("nope") is None


def test_a_name_is_registered_once(toy: Experiment) -> None:
    with pytest.raises(ConfigError, match=f"experiment `{TOY}` is already registered"):
        registry.register(toy)
    assert registry.register(toy, replace=True) is toy


def test_every_headline_path_imports() -> None:
    for experiment in registry.experiments():
        if experiment.headline is not None:
            assert callable(experiment.headline_function()), experiment.name
    broken = Experiment(name="broken", title="Broken", summary="", headline="mechatlas.nowhere:nothing")
    with pytest.raises(ConfigError, match=r"not an importable `package\.module:function`"):
        broken.headline_function()


def test_the_claims_are_those_the_verdicts_judge() -> None:
    from mechatlas.experiments.dimensionality import verdicts as dimensionality
    from mechatlas.experiments.refusal_direction import verdicts as refusal_direction

    claims = {e.name: {f"{c.paper}/{c.claim}" for c in e.claims} for e in registry.experiments()}
    assert claims["refusal_direction"] == {f"{refusal_direction.PAPER}/{c}" for c in refusal_direction.CLAIMS}
    assert claims["dimensionality"] == set(dimensionality.VERDICT_RULES)
    assert registry.get("dimensionality").methods == tuple(dimensionality.METHODS)


def test_the_figures_are_those_the_rules_make() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            "workflow/profiles/default",
            "--dry-run",
            "--forceall",
            "all",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    outputs = {
        path.strip()
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip().startswith("output:")
        for path in line.split(":", 1)[1].split(",")
    }
    made: dict[tuple[str, str], set[str]] = {}
    for path in outputs:
        match = re.fullmatch(r"reports/figures/(\w+)/([\w.-]+)/(\w+)\.svg", path)
        if match:
            made.setdefault((match[1], match[2]), set()).add(match[3])
    assert made, "the dry run planned no figures"
    for experiment in registry.experiments(per_model=True):
        per_model = {model: names for (name, model), names in made.items() if name == experiment.name}
        assert per_model, f"no rule makes figures for {experiment.name}"
        for model, names in per_model.items():
            assert names == set(experiment.figures), (experiment.name, model)
