"""pip-filters: one network that removes noise, rain, haze, blur and low light.

    >>> import pip_filters
    >>> restorer = pip_filters.load()              # the shipped default model
    >>> clean = restorer.restore(image)            # same type, shape and dtype as image
    >>> restorer.detect(image)                     # {'denoise': 0.93, 'derain': 0.01, ...}
    >>> restorer.restore(image, task={"derain": 0.6, "dehaze": 0.4}, strength=0.8)
"""

from .registry import DEFAULT_MODEL, MODELS, list_models
from .restorer import Prompt, Restorer, UntrainedModelError, load
from .tasks import TASKS
from .weights_io import WeightsError

__version__ = "0.1.0"

__all__ = ["DEFAULT_MODEL", "MODELS", "Prompt", "Restorer", "TASKS", "UntrainedModelError", "WeightsError",
           "list_models", "load", "__version__"]
