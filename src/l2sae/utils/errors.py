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


# what the project raises for bad settings, inputs and files (ConfigError, ImageFileError, CheckpointError,
# MissingWeightsError and UnsafeWeightsError are among them, and missing or unwritable paths)
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


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


class ImageTooLargeError(ImageFileError):
    """An image file whose header declares more than ``max_pixels`` pixels (``size``: its W x H, or None where
    only the count is known: over Pillow's decompression-bomb limit); refused before decoding."""

    def __init__(self, path: str | os.PathLike, pixels: int, max_pixels: int, size: tuple[int, int] | None = None):
        self.pixels, self.max_pixels, self.size = pixels, max_pixels, size
        if size:
            problem = f"{size[0]} x {size[1]} pixels is more than max_pixels={max_pixels}"
            fix = "use a smaller image, or raise the max_pixels setting"
        else:  # over Pillow's own limit, which no max_pixels raises
            problem = f"{pixels} pixels is more than Pillow's decompression-bomb limit of {max_pixels}"
            fix = "use a smaller image (or raise PIL.Image.MAX_IMAGE_PIXELS in your own code)"
        super().__init__(path, problem, fix)

    def __reduce__(self):
        return type(self), (self.path, self.pixels, self.max_pixels, self.size)
