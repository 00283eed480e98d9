import warnings
from pathlib import Path

import pytest

import pip_filters

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny():
    """The tiny model: its shipped weights when present, random weights otherwise."""
    try:
        return pip_filters.load("pip-nafnet-t", device="cpu")
    except pip_filters.UntrainedModelError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pip_filters.load("pip-nafnet-t", device="cpu", allow_untrained=True)


@pytest.fixture
def data_root():
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (the shared data folder beside the checkout)")
    return DATA
