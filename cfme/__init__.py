"""cfme: coarse-to-fine meta-embeddings (CFME, LEGCF) for lightweight graph recommenders."""

__version__ = "0.1.0"
