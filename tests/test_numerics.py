"""Every pipeline job and `mechatlas` command computes with AVX2 kernels: the CPU no longer chooses them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mechatlas.errors import MechatlasError
from mechatlas.numerics import AVX2_KERNELS, numerics_record, pin_cpu_kernels

from conftest import REPO

CPU_FLAGS = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""


def test_pinning_fills_in_only_what_the_environment_leaves_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as in a job before its body runs
    environ = {"ATEN_CPU_CAPABILITY": "default"}  # a user's own choice wins
    pin_cpu_kernels(environ)
    assert environ == {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_nothing_left_to_pin_is_allowed_after_torch_is_imported() -> None:
    import torch  # noqa: F401

    environ = dict(AVX2_KERNELS)
    pin_cpu_kernels(environ)
    assert environ == AVX2_KERNELS


def test_pinning_after_torch_is_imported_is_refused_with_the_fix() -> None:
    import torch  # noqa: F401

    with pytest.raises(MechatlasError, match=r"pin_cpu_kernels\(\) first.*MKL_CBWR"):
        pin_cpu_kernels({"ATEN_CPU_CAPABILITY": "avx2"})


def _last_line_without_caps(code: str) -> str:
    """The last line ``code`` prints in a fresh interpreter whose environment sets none of the caps."""
    bare = {k: v for k, v in os.environ.items() if k not in AVX2_KERNELS}
    done = subprocess.run(
        [sys.executable, "-c", code], env=bare, capture_output=True, text=True, check=True, cwd=REPO
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.skipif("avx2" not in CPU_FLAGS, reason="the cap is AVX2; this CPU has none")
def test_a_job_runs_torch_on_avx2_kernels_whatever_the_cpu_offers(tmp_path: Path) -> None:
    job = (
        "from types import SimpleNamespace\n"
        "from mechatlas.pipeline.jobs import job\n"
        "import yaml\n"
        "config = yaml.safe_load(open('params.yaml'))\n"
        f"smk = SimpleNamespace(log=[{str(tmp_path / 'x.log')!r}], config=config)\n"
        "with job(smk):\n"
        "    import torch\n"
        "    print(torch.backends.cpu.get_cpu_capability())\n"
    )
    assert _last_line_without_caps(job) == "AVX2"
    # the control: outside a job, torch takes what the CPU offers
    free = _last_line_without_caps("import torch; print(torch.backends.cpu.get_cpu_capability())")
    assert free == ("AVX512" if "avx512f" in CPU_FLAGS else "AVX2")


def test_the_record_names_the_caps_and_what_torch_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    for name, value in AVX2_KERNELS.items():
        monkeypatch.setenv(name, value)
    record = numerics_record()
    assert record["environment"] == AVX2_KERNELS
    assert record["torch"] == torch.__version__ and record["threads"] == torch.get_num_threads()
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_the_result_page_states_the_kernels() -> None:
    from mechatlas.site.result_pages import numerics_text

    text = numerics_text(
        {"environment": AVX2_KERNELS, "torch": "2.13.0", "cpu_capability": "AVX2", "threads": 2}
    )
    assert (
        text
        == "AVX2 (torch 2.13.0, 2 threads; ATEN_CPU_CAPABILITY=avx2, MKL_CBWR=AVX2, ONEDNN_MAX_CPU_ISA=AVX2)"
    )
    assert numerics_text({"environment": {}}) == "no kernel caps (no torch in this stage)"


def test_a_mechatlas_command_pins_the_kernels_as_a_job_does() -> None:
    code = (
        "import os, sys\n"
        "sys.argv = ['mechatlas', 'config', 'check']\n"
        "from mechatlas.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(os.environ.get(k, '-') for k in sorted(" + repr(sorted(AVX2_KERNELS)) + ")))\n"
    )
    assert _last_line_without_caps(code).split() == [AVX2_KERNELS[k] for k in sorted(AVX2_KERNELS)]
