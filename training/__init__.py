"""Training-time code for pip-filters: synthetic degradations and on-device data batching."""
