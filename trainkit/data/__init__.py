"""Data: the IDX reader, verified downloads and the DataLoader."""

from trainkit.data.idx import read_idx, write_idx
from trainkit.data.loader import Batch, DataLoader, DatasetSplits

__all__ = ["Batch", "DataLoader", "DatasetSplits", "read_idx", "write_idx"]
