"""The CLI: one subcommand per stage, helpful --help, and user errors as one line without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO, deep_update, repo_params


def mechatlas(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, "-m", "mechatlas.cli", *args], cwd=cwd, capture_output=True, text=True, env=env
    )


def test_help_lists_a_subcommand_per_stage() -> None:
    done = mechatlas("--help")
    assert done.returncode == 0
    for group in ("config", "organism", "prompts", "workflow", "lit"):
        assert group in done.stdout
    organism = mechatlas("organism", "--help").stdout
    assert "data" in organism and "train" in organism and "behaviour" in organism


def test_a_bad_params_value_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text(
        yaml.safe_dump(deep_update(repo_params(), {"organism": {"architecture": {"num_layers": 0}}}))
    )
    done = mechatlas("config", "check", "--params", str(bad))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {bad}: `organism.architecture.num_layers` is 0; it must be >= 1"]


def test_a_corrupted_instructions_file_names_the_line_and_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "instructions.jsonl"
    data.write_text('{"record": {"id": "x"}, "response": "Sure"}\n')
    done = mechatlas("organism", "train", "--data", str(data), "--out", str(tmp_path / "model"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{data}:1: missing field(s)" in done.stderr
    assert not (tmp_path / "model").exists(), "no half-written outputs"


def test_the_team_overlay_stops_at_config_check_until_the_snapshots_exist(tmp_path: Path) -> None:
    from mechatlas.config import apply_overlay

    _, merged = apply_overlay(REPO / "params.yaml", REPO / "params" / "team.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merged))
    done = mechatlas("config", "check", "--params", str(tmp_path / "params.yaml"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    # the first model in the file's order (keys sorted by the dump): Llama-3.1-8B
    assert (
        "`models.llama3_1_8b.checkpoint` (data/models/hub/Llama-3.1-8B-Instruct) does not exist"
        in done.stderr
    )
    assert "huggingface-cli download meta-llama/Llama-3.1-8B-Instruct --local-dir" in done.stderr
