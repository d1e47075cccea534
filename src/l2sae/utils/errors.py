"""The project's error types. Each message names what is wrong (a config key or a file) and what to do."""

from __future__ import annotations

import os


def unwrapped(error: BaseException) -> BaseException:
    """``error``, or for Hydra's InstantiationException (an object of the config could not be built) the error it
    was raised from."""
    from hydra.errors import InstantiationException

    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


class ConfigError(ValueError):
    """A setting is wrong; the message names its key (``data.image_size: ...``) and suggests a fix."""


class ImageFileError(ValueError):
    """An image file cannot be used: unreadable, too large, or an output that must not be written.

    ``path`` names the file, ``problem`` says what is wrong with it, ``fix`` what to do. Picklable, so
    it survives the trip back from DataLoader workers.
    """

    def __init__(self, path: str | os.PathLike, problem: str, fix: str = "replace or delete the file"):
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__(f"{self.path}: {problem}; {fix}")

    def __reduce__(self):
        return type(self), (self.path, self.problem, self.fix)
