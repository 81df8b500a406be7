"""Detection limits: the simulation recovers planted dimensions when the signal is strong and not when it is absent."""

from __future__ import annotations

import torch

from mechatlas.interp.geometry.detection import detection_limits, signal_strength

FAST = {"n_permutations": 30, "max_k": 6, "max_rank": 64, "ridge": 1e-3}


def test_signal_strength_is_the_separation_in_pooled_standard_deviations() -> None:
    g = torch.Generator().manual_seed(0)
    harmless = torch.randn(4000, 8, generator=g, dtype=torch.float64)
    harmful = torch.randn(4000, 8, generator=g, dtype=torch.float64) * 2.0
    harmful[:, 0] += 6.0
    pooled_sd = ((4.0 + 1.0) / 2) ** 0.5
    assert abs(signal_strength(harmful, harmless) - 6.0 / pooled_sd) < 0.1


def test_a_strong_planted_signal_is_recovered_and_a_null_one_is_not() -> None:
    strong = detection_limits(
        n_per_class=300, d_model=32, separation=4.0, methods=("spectral",), planted_ks=(1, 2, 3), **FAST
    )
    assert [r["recovered_k"] for r in strong["curves"]["spectral"]] == [1, 2, 3]
    assert strong["detection_limit"]["spectral"] == 3
    weak = detection_limits(
        n_per_class=300, d_model=32, separation=0.0, methods=("spectral",), planted_ks=(1, 2, 3), **FAST
    )
    assert weak["detection_limit"]["spectral"] == 0
