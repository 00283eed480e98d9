"""napari plugin "Restore with PIP" (installed as pip_filters.napari_plugin)."""
