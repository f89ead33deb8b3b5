"""Dense pretraining for the synthetic testbed: its own corpus and the backbone weights file."""
