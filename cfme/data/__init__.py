"""Interaction data: readers, named datasets, synthetic data, sampling, the DataModule."""

from cfme.data.datamodule import InteractionDataModule
from cfme.data.datasets import KNOWN_DATASETS, DatasetUnavailableError, load_split
from cfme.data.reader import DataFormatError, read_adjacency_list

__all__ = ["InteractionDataModule", "KNOWN_DATASETS", "DatasetUnavailableError", "load_split",
           "DataFormatError", "read_adjacency_list"]
