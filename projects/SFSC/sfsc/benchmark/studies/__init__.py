"""Finished studies (evidential-loss selection, ShuffleNet grouping) and their learning check."""
