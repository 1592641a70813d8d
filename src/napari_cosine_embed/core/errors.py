"""Exceptions with messages meant for the person who gave the input."""


class InputError(ValueError):
    """The input (a file, an array, a folder) cannot be used as it is.

    The message says what was found and what was expected, so it can be shown to the user
    verbatim (in a napari notification or on the terminal).
    """


class OutputExistsError(FileExistsError):
    """Writing would replace something that already exists and overwrite was not asked for."""
