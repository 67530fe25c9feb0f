"""Single-model attribution of Laszkiewicz et al. (ICML 2024): FLIPAD, RawPAD, DCTPAD, SM-F, SM-Inv.

* :mod:`.fista` — functional core: final layer as a linear operator + adjoint, power iteration, FISTA,
  eq. 5 via the lasso of C.1;
* :mod:`.inversion` — batched latent inversion with restarts (SM-Inv; reused by seed reconstruction);
* :mod:`.deep_sad` — Deep SAD (appendix B, eq. 6–7);
* :mod:`.features` — raw / DCT / pooled-inversion / residual features;
* :mod:`.attributors` — the five registered attributors (``flipad``, ``rawpad``, ``dctpad``, ``sm-f``,
  ``sm-inv``).

The registry imports this package (it lists sub-packages of ``genattr.attribution`` too); importing
:mod:`.attributors` here is what registers the five names.
"""

from genattr.attribution.flipad.attributors import (
    ATTRIBUTORS,
    DCTPAD,
    FLIPAD,
    RawPAD,
    SingleModelAttributor,
    SMFingerprint,
    SMInversion,
)

__all__ = ["ATTRIBUTORS", "DCTPAD", "FLIPAD", "RawPAD", "SMFingerprint", "SMInversion", "SingleModelAttributor"]
