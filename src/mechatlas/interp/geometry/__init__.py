"""The geometry of refusal: how many dimensions separate harmful from harmless activations.

Arditi et al. (arXiv 2406.11717) found refusal mediated by one direction; Wollschläger et al.
(arXiv 2502.17420) found multi-dimensional concept cones; Zhao et al. (arXiv 2507.11878) found that the
model's judgement of harmfulness sits at a different token from its decision to refuse. This package
holds the pure-tensor half of the question "how many dimensions does refusal occupy?": estimators that
take two sets of activations and return a dimension with a bootstrap CI, a generator of activations with
a planted answer to test them on, and the geometry of per-domain directions. Everything that needs a
model (ablating subspaces and measuring refusal) lives in
``mechatlas.interp.evaluation`` and the dimensionality experiment (``mechatlas.experiments.dimensionality``).

What "dimension" means depends on the estimator, and they can disagree for good reasons:

- **spectral** counts the directions along which the *distributions* of the two classes differ, in mean
  or in spread, relative to the noise both share. The statistic is the spectrum of the harmful class's
  excess second moment about the harmless mean, in coordinates whitened by the pooled covariance::

      D = E_harmful[(y - μ_harmless)(y - μ_harmless)ᵀ] - Cov_harmless = Cov_h - Cov_b + δδᵀ

  A direction that both classes share, however much variance it carries (real residual streams have a
  few huge ones), cancels in ``D``; whitening makes the sampling noise of every direction comparable, so
  those huge directions do not dominate the noise either. The count is the number of eigenvalues above
  the 95th percentile of the *largest* eigenvalue under label permutation (Horn's parallel analysis,
  1965, in the max-statistic form of Buja and Eyuboglu, 1992, which stays calibrated when the signal
  pushes the noise eigenvalues down the ranking). The participation ratio of the excess over that null
  threshold, ``(Σe)² / Σe²``, is a soft version that weights directions by strength.
- **probe** is iterative nullspace projection (INLP, Ravfogel et al., arXiv 2004.07667): fit a
  logistic-regression probe, remove its weight direction by orthogonal projection, and repeat until the
  held-out balanced accuracy is back at chance (within ``chance_margin``). It counts *Euclidean-orthogonal
  cuts needed to erase linear decodability*, which is not the same thing. With a binary label the class
  means differ along exactly one direction, and removing that one direction already erases every linear
  trace (Belrose et al., arXiv 2306.03819); INLP needs more cuts only because its probe weights
  (``Σ⁻¹δ``) miss that direction when the noise is anisotropic. So it can count features of different
  scales, which it peels one per cut, but it **cannot** count (i) a mixture whose class means differ along
  only one direction, such as harm sub-types spread around the harmless mean, or (ii) features of equal
  scale: both are one cut, however many directions they span. And a probe fitted on ``n`` points in
  ``d`` dimensions misses its direction by about ``√(d/n)``, leaving a residual the next round finds
  again, so without the margin INLP over-counts. Its count is reported with its accuracy curve.
- **causal** (in ``mechatlas.experiments.dimensionality.causal``) counts the directions the model *uses*: the smallest
  ``k`` whose ablation brings refusal below a threshold. It is the one that answers the question about
  refusal; the other two bound it from the representation side.

CIs are bootstrap over prompts: for the spectral count, rank-wise centred resampled spectra against the
observed permutation threshold (see ``_spectral_bootstrap`` for why); for INLP, a percentile bootstrap
with the fit and held-out prompts resampled separately.

Modules, in reading order: ``planted`` (activations with a known answer), ``subspaces`` (whitening,
principal angles, overlaps), ``spectral`` and ``inlp`` (the two estimators), ``dimensionality`` (the one
public entry, ``subspace_dimensionality``), ``projections`` (per-domain directions, projections, AUC).
Sums are in float64; every randomised call takes an explicit seed.

>>> data = planted_activations(2, d_model=32, n_per_class=300, seed=0)
>>> subspace_dimensionality(data.harmful, data.harmless, method="spectral", n_bootstrap=10).k
2
"""

from mechatlas.interp.geometry.dimensionality import Dimensionality, Method, subspace_dimensionality
from mechatlas.interp.geometry.inlp import EstimatorDeclined, ProbeFit, inlp, probe_fit
from mechatlas.interp.geometry.planted import PlantedActivations, Structure, planted_activations
from mechatlas.interp.geometry.projections import (
    auc,
    auc_with_ci,
    domain_directions,
    leave_one_out_directions,
    projection_summary,
    relative_position,
)
from mechatlas.interp.geometry.spectral import SpectralFit, spectral_fit
from mechatlas.interp.geometry.subspaces import (
    Whitener,
    cosine_matrix,
    fit_whitener,
    principal_angles,
    subspace_overlap,
)

__all__ = [
    "Dimensionality",
    "EstimatorDeclined",
    "Method",
    "PlantedActivations",
    "ProbeFit",
    "SpectralFit",
    "Structure",
    "Whitener",
    "auc",
    "auc_with_ci",
    "cosine_matrix",
    "domain_directions",
    "fit_whitener",
    "inlp",
    "leave_one_out_directions",
    "planted_activations",
    "principal_angles",
    "probe_fit",
    "projection_summary",
    "relative_position",
    "spectral_fit",
    "subspace_dimensionality",
    "subspace_overlap",
]
