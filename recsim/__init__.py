"""recsim: offline reinforcement learning for recommender systems."""
__version__ = "0.1.0"
