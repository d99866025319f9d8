"""rsaug: geospatial data augmentation with semantic-embedding GANs."""

__version__ = "0.1.0"
