"""pip-video: streaming video restoration with PIP (installed as pip_filters.video)."""
