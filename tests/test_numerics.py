"""Every pipeline job and `mechatlas` command computes with pinned kernels: the CPU no longer chooses them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mechatlas.errors import MechatlasError
from mechatlas.numerics import PINNED_KERNELS, mkl_branch, numerics_record, pin_cpu_kernels

from conftest import REPO

CPU_FLAGS = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""


def test_pinning_fills_in_only_what_the_environment_leaves_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as in a job before its body runs
    environ = {"ATEN_CPU_CAPABILITY": "default"}  # a user's own choice wins
    pin_cpu_kernels(environ)
    assert environ == {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_CBWR": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    }


def test_nothing_left_to_pin_is_allowed_after_torch_is_imported() -> None:
    import torch  # noqa: F401

    environ = dict(PINNED_KERNELS)
    pin_cpu_kernels(environ)
    assert environ == PINNED_KERNELS


def test_pinning_after_torch_is_imported_is_refused_with_the_fix() -> None:
    import torch  # noqa: F401

    with pytest.raises(MechatlasError, match=r"pin_cpu_kernels\(\) first.*MKL_CBWR"):
        pin_cpu_kernels({"ATEN_CPU_CAPABILITY": "avx2"})


def _last_line_without_caps(code: str, **extra: str) -> str:
    """The last line ``code`` prints in a fresh interpreter whose environment sets none of the pins
    (beyond ``extra``)."""
    bare = {k: v for k, v in os.environ.items() if k not in PINNED_KERNELS} | extra
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
        "    from mechatlas.numerics import mkl_branch\n"
        "    print(torch.backends.cpu.get_cpu_capability(), mkl_branch())\n"
    )
    assert _last_line_without_caps(job) == "AVX2 " + ("AVX2" if "GenuineIntel" in CPU_FLAGS else "AUTO")
    # the control: outside a job, torch takes what the CPU offers, and MKL runs no reproducible branch
    free = _last_line_without_caps(
        "import torch; from mechatlas.numerics import mkl_branch; "
        "print(torch.backends.cpu.get_cpu_capability(), mkl_branch())"
    )
    assert free == ("AVX512" if "avx512f" in CPU_FLAGS else "AVX2") + " OFF"


@pytest.mark.skipif(
    "GenuineIntel" in CPU_FLAGS or not CPU_FLAGS, reason="MKL honours its AVX2 branch on Intel"
)
def test_mkl_ignores_its_avx2_branch_on_other_vendors_cpus() -> None:
    """What the AVX2 pin cannot do: on a CPU that is not Intel's, ``MKL_CBWR=AVX2`` runs ``AUTO``, which MKL
    chooses per CPU model (two AMD EPYC machines trained different organisms under it); ``COMPATIBLE``
    is honoured, and the record says which ran."""
    code = "from mechatlas.numerics import mkl_branch; print(mkl_branch())"
    assert _last_line_without_caps(code, MKL_CBWR="AVX2") == "AUTO"
    assert _last_line_without_caps(code, MKL_CBWR="COMPATIBLE") == "COMPATIBLE"


def test_the_record_names_the_caps_and_what_torch_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    for name, value in PINNED_KERNELS.items():
        monkeypatch.setenv(name, value)
    record = numerics_record()
    assert record["environment"] == PINNED_KERNELS
    assert record["torch"] == torch.__version__ and record["threads"] == torch.get_num_threads()
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["mkl_branch"] == mkl_branch() and record["mkl_branch"] is not None


def test_the_result_page_states_the_kernels() -> None:
    from mechatlas.site.result_pages import numerics_text

    text = numerics_text(
        {
            "environment": PINNED_KERNELS,
            "torch": "2.13.0",
            "cpu_capability": "AVX2",
            "mkl_branch": "AVX2",
            "threads": 2,
        }
    )
    assert text == (
        "AVX2, MKL branch AVX2 (torch 2.13.0, 2 threads; "
        "ATEN_CPU_CAPABILITY=avx2, MKL_CBWR=AVX2, ONEDNN_MAX_CPU_ISA=AVX2)"
    )
    assert numerics_text({"environment": {}}) == "no kernel pins (no torch in this stage)"


def test_a_mechatlas_command_pins_the_kernels_as_a_job_does() -> None:
    code = (
        "import os, sys\n"
        "sys.argv = ['mechatlas', 'config', 'check']\n"
        "from mechatlas.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(os.environ.get(k, '-') for k in sorted(" + repr(sorted(PINNED_KERNELS)) + ")))\n"
    )
    assert _last_line_without_caps(code).split() == [PINNED_KERNELS[k] for k in sorted(PINNED_KERNELS)]
