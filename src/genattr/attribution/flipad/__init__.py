"""Single-model attribution of Laszkiewicz et al. (ICML 2024): FLIPAD, RawPAD, DCTPAD, SM-F, SM-Inv.

* :mod:`.fista` — functional core: final layer as a linear operator + adjoint, power iteration, FISTA,
  eq. 5 via the lasso of C.1;
* :mod:`.inversion` — batched latent inversion with restarts (SM-Inv; reused by seed reconstruction);
* :mod:`.deep_sad` — Deep SAD (appendix B, eq. 6–7);
* :mod:`.features` — raw / DCT / pooled-inversion / residual features;
* :mod:`.single_model` — the plumbing every single-model attributor shares (one candidate G, positives);
* :mod:`.deep_sad_family` — ``rawpad``, ``dctpad`` and ``flipad`` (features + Deep SAD);
* :mod:`.sm_baselines` — ``sm-f`` and ``sm-inv`` (appendix E).

The registry imports this package (it lists sub-packages of ``genattr.attribution`` too); importing the
modules here is what registers the five names.
"""

from genattr.attribution.flipad.deep_sad_family import DCTPAD, FLIPAD, DeepSADAttributor, RawPAD, mean_penultimate
from genattr.attribution.flipad.single_model import SingleModelAttributor
from genattr.attribution.flipad.sm_baselines import SMFingerprint, SMInversion

# The registry names of the single-model methods (look classes up with genattr.attribution.attributor_class).
SINGLE_MODEL_METHODS = ("flipad", "rawpad", "dctpad", "sm-f", "sm-inv")

__all__ = ["DCTPAD", "FLIPAD", "SINGLE_MODEL_METHODS", "DeepSADAttributor", "RawPAD", "SMFingerprint", "SMInversion",
           "SingleModelAttributor", "mean_penultimate"]
