"""Training loops: GANs for the zoo (``gan``) and the small Fashion-MNIST classifier (``classifier``)."""

from genattr.training.gan import ARCH_DEFAULTS, TrainConfig, TrainResult, gradient_penalty, pull_away_term, train_gan

__all__ = ["ARCH_DEFAULTS", "TrainConfig", "TrainResult", "gradient_penalty", "pull_away_term", "train_gan"]
