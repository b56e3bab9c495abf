"""The one error type every importer raises for a bad file."""

from __future__ import annotations

from pathlib import Path


class FormatError(ValueError):
    """A file that cannot be imported, with where and why.

    The message names the file and, where known, the line (1-based), the feature
    (index or id), the section and the field, then what was expected and what was found.
    """

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        feature: str | int | None = None,
        section: str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.feature = feature
        self.section = section
        self.field = field
        self.reason = message
        where = [self.path]
        if line is not None:
            where.append(f"line {line}")
        if section is not None:
            where.append(f"section [{section}]")
        if feature is not None:
            where.append(f"feature {feature}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}")
