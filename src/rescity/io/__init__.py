"""One module per outside format, each with ``read_*`` and ``write_*`` functions."""

from .errors import FormatError

__all__ = ["FormatError"]
