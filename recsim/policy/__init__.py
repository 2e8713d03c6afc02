"""Recommendation policies: state trackers (`trackers`) and, later, tianshou algorithm factories."""
