"""Watermarking generators so that their outputs can be attributed.

Kim, Ren & Yang (ICLR 2021), registry keys and key-specific user models:

* :mod:`~genattr.watermark.keys` — key generation (Eq. 8, incl. the 45° baseline), compliance checks and
  key-set files (``keys.safetensors`` + ``keys.json``);
* :mod:`~genattr.watermark.kim_training` — user-end fine-tuning (Eq. 11 hinge + C·MSE, Alg. 1) and robust
  training against the five post-processes;
* :mod:`~genattr.watermark.kim_metrics` — D (Eq. 1), A (Eq. 2), ‖Δx‖ (Eq. 3), FD, the Eq. 6 / Eq. 7 checks and
  the many-user simulation.

Yu et al. (ICLR 2022), scalable fingerprints: :mod:`~genattr.watermark.fingerprint`,
:mod:`~genattr.watermark.fingerprint_training`, :mod:`~genattr.watermark.fingerprint_index` (the registry) and
:mod:`~genattr.watermark.fingerprint_codes` (its code helpers and §4.6 decision rules).

Import the submodules directly (nothing is imported here, so each part loads only what it needs).
Layering: this package imports generators, perturbations, metrics, data, sampling, figures and
attribution.base only; only attribution, evaluation, cli and service import it.
"""
