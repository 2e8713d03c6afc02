"""Reward sources: the reward table, the kNN estimator (ROLeR) and penalties."""
