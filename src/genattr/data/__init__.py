"""Real data and the tensor convention (float32 NCHW in [-1, 1], 32×32 for the zoo)."""

from genattr.data.convention import (
    ZOO_SIZE,
    check_model_tensor,
    make_grid,
    pad_to,
    save_png,
    to_model,
    to_uint8,
)
from genattr.data.datasets import (
    DEFAULT_FMNIST_DIR,
    FMNIST_CLASSES,
    ImageSet,
    fashion_mnist_dir,
    fashion_mnist_sha256,
    fit_to_size,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_image_folder,
    load_images,
    read_image,
)
from genattr.data.idx import parse_idx, read_idx

__all__ = [
    "DEFAULT_FMNIST_DIR",
    "FMNIST_CLASSES",
    "ZOO_SIZE",
    "ImageSet",
    "check_model_tensor",
    "fashion_mnist_dir",
    "fashion_mnist_sha256",
    "fit_to_size",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "load_images",
    "make_grid",
    "pad_to",
    "parse_idx",
    "read_idx",
    "read_image",
    "save_png",
    "to_model",
    "to_uint8",
]
