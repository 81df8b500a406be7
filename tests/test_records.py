"""The result record contract: one verdict vocabulary, one writer, one reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mechatlas.errors import ArtifactError
from mechatlas.literature.papers import read_paper
from mechatlas.records import ClaimVerdict, Verdict, read_result, write_result

PROVENANCE = {
    "code": {"stage": "refusal_evaluate", "sha256": "ab" * 32, "files": 40, "commit": "abc123"},
    "params_hash": "0" * 16,
    "params_sections": ["refusal_direction"],
    "model": {"name": "tiny", "id": "tests/tiny", "revision": None},
    "seeds": {"refusal_direction": 0},
    "command": "snakemake --profile workflow/profiles/default data/results/x/tiny/metrics.json",
}


def _write(path: Path, verdict: str = "not replicated", **overrides: Any) -> None:
    record: dict[str, Any] = {
        "metrics": {"refusal_rate": {"value": 0.25, "ci95": [0.1, 0.4]}},
        "replicates": [{"paper": "p2024", "claim": "c", "verdict": verdict, "reason": "numbers"}],
        "methods": ["difference-in-means"],
        "provenance": PROVENANCE,
    }
    write_result(path, **(record | overrides))


def test_a_written_record_reads_back_as_it_was_written(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    _write(path)
    record = read_result(path)
    assert record.metrics == {"refusal_rate": {"value": 0.25, "ci95": [0.1, 0.4]}}
    assert record.replicates == (ClaimVerdict("p2024", "c", Verdict.not_replicated, "numbers"),)
    assert record.methods == ("difference-in-means",)
    assert record.provenance == PROVENANCE
    assert record.raw == path.read_text()
    assert json.loads(record.raw)["replicates"][0]["verdict"] == "not replicated"


def test_records_sharing_a_folder_each_keep_their_own_headline(tmp_path: Path) -> None:
    from mechatlas.organism.stages import planted_headline

    for name, value in (("one_direction", 0.1), ("redundant", 0.9)):
        record = tmp_path / f"{name}.json"
        _write(
            record,
            metrics={"refusal_rate": {"value": value, "ci95": [0.0, 1.0]}},
            headline=planted_headline(record),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "one_direction.headline.json",
        "one_direction.json",
        "redundant.headline.json",
        "redundant.json",
    ]
    assert json.loads((tmp_path / "one_direction.headline.json").read_text())["refusal_rate"]["value"] == 0.1


def test_the_writer_refuses_a_verdict_outside_the_vocabulary(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'not-replicated' is not one of"):
        _write(tmp_path / "metrics.json", verdict="not-replicated")
    assert not (tmp_path / "metrics.json").exists()


def test_the_reader_refuses_a_verdict_outside_the_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    _write(path)
    path.write_text(path.read_text().replace('"not replicated"', '"not-replicated"'))
    with pytest.raises(
        ArtifactError, match=r"^x/metrics\.json: `replicates\.0` is not a \{paper, claim, verdict\}"
    ):
        read_result(path, display="x/metrics.json")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text[: len(text) // 2], r"metrics\.json:\d+: invalid JSON"),
        (lambda text: text.replace('"methods"', '"method"'), r"metrics\.json: the record has no `methods`"),
        (lambda text: text.replace('"command"', '"cmd"'), r"metrics\.json: incomplete provenance"),
    ],
)
def test_a_damaged_record_gives_one_line_naming_the_file(tmp_path: Path, damage: Any, message: str) -> None:
    path = tmp_path / "metrics.json"
    _write(path)
    path.write_text(damage(path.read_text()))
    with pytest.raises(ArtifactError, match=rf"^{tmp_path.as_posix()}/{message}") as error:
        read_result(path)
    assert "\n" not in str(error.value)


def test_a_verdict_has_exactly_one_spelling() -> None:
    assert [v.value for v in Verdict] == ["replicated", "partially", "not replicated", "pending"]
    assert Verdict.parse("not replicated") is Verdict.not_replicated
    for other in ("not-replicated", "not_replicated", "Not Replicated", "maybe", None):
        assert Verdict.parse(other) is None
    assert Verdict.not_replicated.slug == "not-replicated"


def test_a_paper_file_with_another_spelling_of_a_verdict_names_the_line_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "alpha2024first.yaml"
    path.write_text(
        "methods: []\nmodels: []\ntags: []\n"
        "claims:\n  - id: alpha-claim\n    statement: Alpha holds.\n    evidence: The first experiment.\n"
        "    location: Section 2\n"
        "replications:\n  - claim: alpha-claim\n    experiment: exp\n    model: tiny\n"
        "    verdict: not-replicated\n"
    )
    _, problems = read_paper(path, "literature/papers/alpha2024first.yaml")
    [problem] = problems
    assert (problem.file, problem.line) == ("literature/papers/alpha2024first.yaml", 13)
    assert "'not-replicated'" in problem.message and "'not replicated'" in problem.fix


def _git(root: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_code_provenance_changes_with_the_code_and_never_with_the_lock(tmp_path: Path) -> None:
    from mechatlas.records import code_provenance

    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.py").write_text("x = 1\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  one:\n    cmd: run\n    deps:\n      - data/in.txt\n      - src/a.py\n"
    )
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "code")
    head = _git(tmp_path, "rev-parse", "HEAD")
    first = code_provenance("one", tmp_path)
    assert first["commit"] == head and first["files"] == 1

    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")  # DVC rewrites the lock mid-run
    assert code_provenance("one", tmp_path) == first
    _git(tmp_path, "commit", "-qam", "results")  # committing results moves HEAD, not the code's commit
    assert code_provenance("one", tmp_path) == first

    (tmp_path / "src/a.py").write_text("x = 2\n")
    edited = code_provenance("one", tmp_path)
    assert edited["commit"] is None and edited["sha256"] != first["sha256"]
    with pytest.raises(ArtifactError, match="no stage `two`"):
        code_provenance("two", tmp_path)
