"""The Snakemake DAG: lint, profile dry runs, targeted reruns, and an end-to-end smoke run on a tiny config.

The smoke run executes every rule of the real workflow, in a scratch copy of the repository, with the
tiny overrides from conftest: seconds instead of minutes, same code path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mechatlas.cli.dvc_deps import code_closure, rule_scripts, with_code_deps
from mechatlas.io import TEMP_MARK

from conftest import REPO, TINY_OVERRIDES, deep_update, repo_params

pytestmark = pytest.mark.xdist_group("workflow")


def snakemake(workdir: Path, *args: str, profile: str = "default") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "snakemake", "--profile", f"workflow/profiles/{profile}", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)


def planned_jobs(output: str) -> dict[str, int]:
    """Job counts from a dry run's 'Job stats' table."""
    jobs: dict[str, int] = {}
    if "Job stats:" not in output:
        return jobs
    table = output.split("Job stats:", 1)[1]
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        if match.group(1) != "total":
            jobs[match.group(1)] = int(match.group(2))
    return jobs


def scratch_copy(root: Path, params: dict[str, Any]) -> Path:
    parts = (
        "workflow",
        "data/prompts",
        "data/organism/vocabulary.yaml",
        "literature",
        "pages",
        "reports",
        "mkdocs.yml",
        "CONTRIBUTING.md",
        "CITATION.cff",
    )
    for part in parts:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, root / part, ignore=shutil.ignore_patterns("figures", "generated"))
        elif src.exists():
            (root / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / part)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole DAG, run once on the tiny config; later tests inspect and dry-run against it."""
    root = scratch_copy(tmp_path_factory.mktemp("smoke"), deep_update(repo_params(), TINY_OVERRIDES))
    done = snakemake(root, "--cores", "2", "all")
    assert done.returncode == 0, done.stderr[-4000:]
    return root


def test_the_workflow_passes_snakemake_lint() -> None:
    done = snakemake(REPO, "--lint")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("profile", ["default", "slurm", "kubernetes"])
def test_every_profile_plans_the_whole_study_in_a_dry_run(tmp_path: Path, profile: str) -> None:
    root = scratch_copy(tmp_path, repo_params())
    extra: list[str] = []
    if profile == "kubernetes":  # its shared volume, here a scratch folder holding the committed inputs
        shutil.copytree(root / "data", tmp_path / "volume" / "data")
        extra = ["--default-storage-prefix", str(tmp_path / "volume")]
    done = snakemake(root, "--dry-run", *extra, "all", profile=profile)
    assert done.returncode == 0, done.stdout[-3000:]
    jobs = planned_jobs(done.stdout + done.stderr)
    assert {"organism_data", "organism_train", "organism_behaviour"} <= set(jobs)


def test_an_invalid_param_stops_the_workflow_before_any_job(tmp_path: Path) -> None:
    root = scratch_copy(tmp_path, deep_update(repo_params(), {"run": {"dtype": "float8"}}))
    done = snakemake(root, "--dry-run", "all")
    assert done.returncode != 0
    assert (
        "`run.dtype` is 'float8'; allowed values are 'float32', 'float16' or 'bfloat16'"
        in done.stdout + done.stderr
    )


def test_the_smoke_run_writes_the_organism_and_its_behaviour(smoke_run: Path) -> None:
    import json

    assert (smoke_run / "data/models/organism/model.safetensors").exists()
    result = json.loads((smoke_run / "data/results/organism/behaviour.json").read_text())
    assert set(result) == {"metrics", "replicates", "methods", "provenance"}
    assert result["provenance"]["params_hash"] and result["provenance"]["command"].startswith("snakemake")
    assert result["metrics"]["refusal_rate"]["harmful"]["n"] > 0


def test_a_second_run_has_nothing_to_do(smoke_run: Path) -> None:
    done = snakemake(smoke_run, "--dry-run", "all")
    assert done.returncode == 0 and planned_jobs(done.stdout + done.stderr) == {}


def test_changing_the_organism_seed_reruns_only_what_depends_on_it(smoke_run: Path) -> None:
    params = yaml.safe_load((smoke_run / "params.yaml").read_text())
    changed = smoke_run / "params.seed1.yaml"
    changed.write_text(yaml.safe_dump(deep_update(params, {"organism": {"training": {"seed": 1}}})))
    done = snakemake(smoke_run, "all", "--dry-run", "--configfile", str(changed))
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = planned_jobs(done.stdout + done.stderr)
    assert "organism_train" in jobs and "organism_behaviour" in jobs
    assert "organism_data" not in jobs, "the data generator does not read the training seed"


def test_reordering_keys_in_the_params_file_reruns_nothing(smoke_run: Path) -> None:
    params = yaml.safe_load((smoke_run / "params.yaml").read_text())

    def reversed_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reversed_keys(value[k]) for k in reversed(list(value))}
        return value

    reordered = smoke_run / "params.reordered.yaml"
    reordered.write_text(yaml.safe_dump(reversed_keys(params), sort_keys=False))
    done = snakemake(smoke_run, "all", "--dry-run", "--configfile", str(reordered))
    assert done.returncode == 0, done.stderr[-3000:]
    assert planned_jobs(done.stdout + done.stderr) == {}


def test_rewritten_mtimes_do_not_trigger_reruns_once_synced(smoke_run: Path) -> None:
    # What `dvc pull` into a fresh clone looks like to Snakemake: no metadata, arbitrary mtimes.
    meta = smoke_run / ".snakemake"
    shutil.move(meta, smoke_run / "snakemake-meta-backup")
    try:
        import time

        now = time.time()
        for path in (smoke_run / "data").rglob("*"):  # outputs first, an hour ago; then the inputs, now
            os.utime(path, (now - 3600, now - 3600))
        for path in (smoke_run / "data/organism").rglob("*"):
            os.utime(path, (now, now))
        assert planned_jobs(snakemake(smoke_run, "--dry-run", "all").stdout), "without metadata mtimes decide"
        touched = snakemake(smoke_run, "--touch", "all")
        assert touched.returncode == 0, touched.stderr[-2000:]
        assert planned_jobs(snakemake(smoke_run, "--dry-run", "all").stdout) == {}
    finally:
        shutil.rmtree(meta, ignore_errors=True)
        shutil.move(smoke_run / "snakemake-meta-backup", meta)


def runner(workdir: Path, stage: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A DVC stage's command: the mechatlas runner around Snakemake, with DVC_STAGE set as DVC sets it."""
    shutil.copy(REPO / "dvc.yaml", workdir / "dvc.yaml")  # the runner reads the stage's outputs from it
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "mechatlas.pipeline.runner", "--profile", "workflow/profiles/default", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env={**env, "DVC_STAGE": stage})


def test_a_failing_stage_prints_its_one_line_and_keeps_the_previous_result(smoke_run: Path) -> None:
    prompts, result = (
        smoke_run / "data/prompts/handwritten.jsonl",
        smoke_run / "data/results/organism/behaviour.json",
    )
    good, before = prompts.read_text(), result.read_bytes()
    lines = good.splitlines()
    prompts.write_text("\n".join([*lines[:2], '{"id": "broken",', *lines[3:]]) + "\n")
    try:
        done = runner(
            smoke_run, "organism_behaviour", str(result.relative_to(smoke_run)),
            "--allowed-rules", "organism_behaviour", "--forcerun", "organism_behaviour",
        )  # fmt: skip
    finally:
        prompts.write_text(good)
    assert done.returncode != 0 and "Traceback" not in done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("error: data/prompts/handwritten.jsonl:3: not valid JSON")
    assert "(log: logs/organism/behaviour.log)" in errors[0] or "(log: logs/" in errors[0]
    assert errors[0].endswith(
        "the previous data/results/organism/behaviour.json, data/results/organism/headline.json, data/results/organism/training_loss.csv are kept"
    )
    assert result.read_bytes() == before, "the failed rerun lost nothing"
    assert not (smoke_run / ".snakemake/mechatlas-backup").exists()


def test_a_run_after_kill_9_clears_the_stale_lock_by_itself(smoke_run: Path) -> None:
    locks = smoke_run / ".snakemake/locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.input.lock").write_text("left by a killed run\n")
    (smoke_run / f"data/activations/.organism{TEMP_MARK}x1").mkdir(parents=True)
    done = runner(smoke_run, "", "--dry-run", "all")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "removed 1 stale Snakemake lock(s)" in done.stdout
    assert not any(locks.iterdir()) and not list((smoke_run / "data/activations").glob(f"*{TEMP_MARK}*"))


def test_every_dvc_stage_calls_a_snakemake_target_with_its_own_rules() -> None:
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    rules = set(
        re.findall(
            r"^rule (\w+):", "\n".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk")), re.M
        )
    )
    staged: set[str] = set()
    for name, stage in dvc["stages"].items():
        cmd = stage.get("do", stage)["cmd"]  # `foreach` stages (one per model) keep theirs under `do`
        match = re.search(r"^\$\{smk\} \S+ --allowed-rules ([\w ]+?) --forcerun ([\w ]+)$", cmd)
        assert match, f"stage {name} must name its rules"
        assert match.group(1) == match.group(2)
        staged |= set(match.group(1).split())
    assert staged == rules, (
        f"rules without a DVC stage: {rules - staged}; stages without a rule: {staged - rules}"
    )


# --- DVC sees every code change that can change a result ------------------------------------------------


def test_every_dvc_stage_depends_on_exactly_the_code_its_rules_run() -> None:
    """Editing a shared helper (stats, io, records, ...) must mark the results it shaped as stale."""
    scripts = rule_scripts(REPO)
    assert {"organism_train", "refusal_select", "site_pages"} <= set(scripts)
    assert REPO / "src/mechatlas/stats.py" in code_closure(REPO, scripts["organism_behaviour"])
    assert with_code_deps(REPO, REPO / "dvc.yaml") == (REPO / "dvc.yaml").read_text(), (
        "dvc.yaml's code deps differ from the import closure; run `mechatlas workflow deps`"
    )


def test_a_stage_missing_a_module_is_rewritten_to_include_it(tmp_path: Path) -> None:
    dvc = (REPO / "dvc.yaml").read_text()
    broken = dvc.replace("        - src/mechatlas/stats.py\n", "", 1)
    assert broken != dvc
    (tmp_path / "dvc.yaml").write_text(broken)
    assert with_code_deps(REPO, tmp_path / "dvc.yaml") == dvc


def test_a_planted_models_stages_wait_for_its_planting(tmp_path: Path) -> None:
    # DVC orders stages by their deps: each model's stages depend on its own `checkpoint`, so the planted
    # overlay's experiments come after the planting that writes their weights (not after the organism's).
    from mechatlas.config import apply_overlay

    _, merged = apply_overlay(REPO / "params.yaml", REPO / "params" / "planted.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merged))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "-q"], cwd=tmp_path, check=True)
    for model, planted in (("planted_one_direction", "one_direction"), ("planted_redundant", "redundant")):
        done = subprocess.run(
            [*dvc, "dag", "--dot", f"refusal_activations@{model}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert f'"organism_plant@{planted}" -> "refusal_activations@{model}"' in done.stdout
    organism = subprocess.run(
        [*dvc, "dag", "--dot", "refusal_activations@organism"], cwd=tmp_path, capture_output=True, text=True
    )
    assert '"organism_train" -> "refusal_activations@organism"' in organism.stdout
    assert "organism_plant" not in organism.stdout
