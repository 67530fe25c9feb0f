"""Generator architectures (FLIPAD G.2 at 32×32) behind one interface and a registry."""

from genattr.generators import architectures as _architectures  # noqa: F401  (registers the built-ins)
from genattr.generators.architectures import (
    DCGANDiscriminator,
    DCGANGenerator,
    EBGANDiscriminator,
    EBGANGenerator,
    LSGANDiscriminator,
    LSGANGenerator,
    WGANGPGenerator,
)
from genattr.generators.base import (
    Generator,
    create_generator,
    generator_class,
    list_generators,
    register_generator,
)

__all__ = [
    "DCGANDiscriminator", "DCGANGenerator", "EBGANDiscriminator", "EBGANGenerator", "Generator",
    "LSGANDiscriminator", "LSGANGenerator", "WGANGPGenerator", "create_generator", "generator_class",
    "list_generators", "register_generator",
]
