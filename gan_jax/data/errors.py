"""The data layer's error, shared by the readers (idx) and the sources built on them."""


class DataError(ValueError):
    """Bad data input; str(e) is one line naming the problem and the fix."""
