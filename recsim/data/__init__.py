"""The data layer: the canonical `Dataset`, loaders for the real formats and the synthetic world."""
from recsim.data.schema import Dataset
from recsim.data.store import DATASET_NAMES, load_dataset
from recsim.data.synthetic import generate_world, write_kuairec

__all__ = ["Dataset", "DATASET_NAMES", "load_dataset", "generate_world", "write_kuairec"]
