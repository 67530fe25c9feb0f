"""Attribution methods behind one contract (:mod:`genattr.attribution.base`) and one registry.

    from genattr.attribution import create_attributor, list_attributors
    att = create_attributor("nearest-mean").fit({"dcgan": x_dcgan, "lsgan": x_lsgan})
    att.calibrate({"dcgan": val_dcgan, "lsgan": val_lsgan}, target_fnr=0.005)
    att.predict(x)  # ["dcgan", "UNKNOWN", ...]
"""

from genattr.attribution.base import (
    AttributionResult,
    Attributor,
    Capabilities,
    InvalidInputError,
    NotFittedError,
    assign_labels,
    check_images,
)
from genattr.attribution.registry import (
    attributor_class,
    create_attributor,
    list_attributors,
    register_attributor,
    registered_name,
    unregister_attributor,
)

__all__ = [
    "AttributionResult", "Attributor", "Capabilities", "InvalidInputError", "NotFittedError", "assign_labels",
    "attributor_class", "check_images", "create_attributor", "list_attributors", "register_attributor",
    "registered_name", "unregister_attributor",
]
