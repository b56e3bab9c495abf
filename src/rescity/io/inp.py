"""The INP text format that EPANET and SWMM share, and the helpers both importers use.

Both engines read plain-text files made of sections (``[JUNCTIONS]``), one record a
line, fields separated by white space, ``;`` starting a comment and double quotes
grouping a field that holds spaces. :func:`read_inp` tokenizes such a file into, per
section, the data lines as :class:`InpLine` ``(number, fields, raw)`` so each importer can
validate every record and name the exact line of a fault, and keeps every section's raw
text in file order so what an importer does not model can be written back verbatim.

The rest of the module is what both importers need around that: row specifications
(:class:`RowSpec`, :func:`check_rows`), number parsing (:func:`parse_number`), id
registries (:class:`IdRegistry`), placing file coordinates on the Earth
(:func:`resolve_placement`) and back (:func:`export_xy`), and number formatting
(:func:`fmt_number`). Every failure is a :class:`~rescity.io.errors.FormatError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rescity.model.geo import Placement, looks_like_lonlat

from .errors import FormatError

#: a field: a double-quoted string (quotes dropped) or a run of non-blank characters
_FIELD = re.compile(r'"([^"]*)"|([^\s"]+)')

#: coordinates that differ from the placed originals by less than this many degrees
#: (about 1 micrometre) count as unchanged on export
UNCHANGED_DEG = 1e-11


class InpLine(NamedTuple):
    """One data line of a section: 1-based ``number``, its ``fields`` and the ``raw`` text."""

    number: int
    fields: list[str]
    raw: str


@dataclass(slots=True)
class InpBlock:
    """One section as it appears in the file: its header line and every body line verbatim."""

    name: str
    header: str
    number: int
    lines: list[str] = field(default_factory=list)


@dataclass(slots=True)
class InpFile:
    """A tokenized INP file.

    ``sections`` maps a canonical section name to its data lines (comments and blank lines
    dropped; a section that occurs twice is merged); ``blocks`` holds every section in
    file order with its raw text; ``preamble`` the lines before the first section;
    ``n_lines`` the number of the last line read; ``encoding`` the text encoding.
    """

    path: Path
    n_lines: int = 0
    encoding: str = "utf-8"
    sections: dict[str, list[InpLine]] = field(default_factory=dict)
    blocks: list[InpBlock] = field(default_factory=list)
    preamble: list[str] = field(default_factory=list)

    def section(self, name: str) -> list[InpLine]:
        """The data lines of section ``name`` (empty when the file has no such section)."""
        return self.sections.get(name, [])

    def error(
        self, message: str, line: InpLine | int | None = None, section: str | None = None,
        *, field: str | None = None, feature: str | int | None = None,
    ) -> FormatError:
        """A :class:`FormatError` about this file, at ``line`` of ``section``."""
        number = line.number if isinstance(line, InpLine) else line
        return FormatError(
            self.path, message, line=number, section=section, field=field, feature=feature
        )


def split_fields(text: str) -> tuple[list[str], str]:
    """Split one line into its fields and its comment (the text after the first ``;``
    that is not inside double quotes)."""
    cut = len(text)
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            cut = i
            break
    fields = [m.group(1) if m.group(1) is not None else m.group(2)
              for m in _FIELD.finditer(text[:cut])]
    return fields, text[cut + 1:] if cut < len(text) else ""


def read_text(path: str | Path, encodings: Sequence[str] = ("utf-8",)) -> tuple[str, str]:
    """The text of ``path`` and the first of ``encodings`` that decodes it; a FormatError
    if it is missing, not a file or not text."""
    p = Path(path)
    if not p.exists():
        raise FormatError(p, "file not found")
    if not p.is_file():
        raise FormatError(p, "not a regular file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise FormatError(p, f"cannot read the file: {exc}") from exc
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise FormatError(p, "a NUL byte: this is not a text file", line=line)
    err: UnicodeDecodeError | None = None
    for enc in encodings:
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError as exc:
            err = err or exc
    assert err is not None
    line = data[: err.start].count(b"\n") + 1
    raise FormatError(
        p, f"not {' or '.join(encodings)} text (byte {data[err.start]:#04x})", line=line
    )


def read_inp(
    path: str | Path,
    *,
    canonical: Callable[[str], str | None],
    end_marker: str | None = None,
    encodings: Sequence[str] = ("utf-8",),
) -> InpFile:
    """Tokenize an INP file.

    ``canonical`` maps a section name as written (upper-cased, without brackets) to the
    module's canonical name, or None for an unknown section (a FormatError naming the
    line). Reading stops at a section named ``end_marker`` (EPANET's ``[END]``). Data
    before the first section header is an error; comments there are kept as preamble.
    """
    p = Path(path)
    text, encoding = read_text(p, encodings)
    inp = InpFile(path=p, encoding=encoding)
    block: InpBlock | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        inp.n_lines = number
        fields, _comment = split_fields(raw)
        stripped = raw.strip()
        if stripped.startswith("["):
            token = stripped.split(None, 1)[0]
            written = token.strip("[]").upper()
            if not token.endswith("]"):
                raise FormatError(
                    p, f"section header {token!r} has no closing ']' (is the line cut off?)",
                    line=number, section=written,
                )
            if end_marker is not None and written == end_marker:
                break
            name = canonical(written)
            if name is None:
                raise FormatError(p, f"unknown section [{written}]", line=number, section=written)
            block = InpBlock(name=name, header=raw, number=number)
            inp.blocks.append(block)
            inp.sections.setdefault(name, [])
            continue
        if block is None:
            if fields:
                raise FormatError(
                    p, f"data before the first [SECTION] header: {stripped[:60]!r}", line=number
                )
            inp.preamble.append(raw)
            continue
        block.lines.append(raw)
        if fields:
            inp.sections[block.name].append(InpLine(number, fields, raw))
    return inp


# -- validation helpers -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowSpec:
    """What each data line of one section holds.

    ``names`` names the fields in order (for messages); a line needs at least
    ``min_fields`` and at most ``max_fields`` (None: any number) fields; the positions in
    ``numeric`` must be finite numbers when present, except that those also in ``star``
    may hold ``*`` (SWMM's "not given").
    """

    names: tuple[str, ...]
    min_fields: int
    max_fields: int | None = None
    numeric: tuple[int, ...] = ()
    star: tuple[int, ...] = ()

    def name(self, index: int) -> str:
        return self.names[index] if index < len(self.names) else f"field {index + 1}"


def locate(inp: InpFile, token: str) -> InpLine | None:
    """The one data line holding ``token`` as a field, if exactly one does (to point at
    the line behind an engine's error message that names only a value)."""
    hits = [ln for lines in inp.sections.values() for ln in lines if token in ln.fields]
    return hits[0] if len(hits) == 1 else None


def parse_number(inp: InpFile, line: InpLine, section: str, index: int, name: str) -> float:
    """Field ``index`` of ``line`` as a finite float, or a FormatError naming the field."""
    text = line.fields[index]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
        ok = False
    else:
        ok = math.isfinite(value)
    if not ok:
        raise inp.error(
            f"expected a number, found {text!r}", line, section, field=name,
            feature=line.fields[0],
        )
    return value


def check_count(inp: InpFile, line: InpLine, section: str, spec: RowSpec) -> None:
    """A FormatError if ``line`` has too few or too many fields for ``spec``."""
    n = len(line.fields)
    if n < spec.min_fields:
        missing = ", ".join(spec.name(i) for i in range(n, spec.min_fields))
        raise inp.error(
            f"expected at least {spec.min_fields} fields, found {n} "
            f"(missing {missing}; is the line cut off?)",
            line, section, field=spec.name(n), feature=line.fields[0],
        )
    if spec.max_fields is not None and n > spec.max_fields:
        raise inp.error(
            f"expected at most {spec.max_fields} fields ({' '.join(spec.names)}), found {n}",
            line, section, field=spec.name(spec.max_fields), feature=line.fields[0],
        )


def check_rows(inp: InpFile, section: str, spec: RowSpec) -> None:
    """Check the field count and the numeric fields of every line of ``section``."""
    for line in inp.section(section):
        check_count(inp, line, section, spec)
        for i in spec.numeric:
            if i < len(line.fields) and not (i in spec.star and line.fields[i] == "*"):
                parse_number(inp, line, section, i, spec.name(i))


class IdRegistry:
    """Ids of one namespace (nodes, links, ...) and where each was defined.

    SWMM names are case-insensitive (``case_sensitive=False``): a reference resolves to
    the spelling of the definition.
    """

    def __init__(self, inp: InpFile, what: str, *, case_sensitive: bool = True) -> None:
        self.inp = inp
        self.what = what
        self.case_sensitive = case_sensitive
        self._where: dict[str, tuple[str, str, int]] = {}

    def _key(self, name: str) -> str:
        return name if self.case_sensitive else name.upper()

    def add(self, name: str, section: str, line: InpLine) -> None:
        """Register ``name``; a FormatError if it is already defined."""
        key = self._key(name)
        if key in self._where:
            _, sec, first = self._where[key]
            raise self.inp.error(
                f"duplicate {self.what} id {name!r} (first defined at line {first} "
                f"in [{sec}])", line, section, feature=name,
            )
        self._where[key] = (name, section, line.number)

    def add_all(self, sections: Iterable[str]) -> None:
        """Register the first field of every line of ``sections``."""
        for sec in sections:
            for line in self.inp.section(sec):
                self.add(line.fields[0], sec, line)

    def resolve(self, name: str) -> str | None:
        """The defined spelling of ``name``, or None."""
        hit = self._where.get(self._key(name))
        return hit[0] if hit else None

    def section_of(self, name: str) -> str | None:
        """The section that defined ``name``, or None."""
        hit = self._where.get(self._key(name))
        return hit[1] if hit else None

    def require(self, name: str, line: InpLine, section: str, field: str) -> str:
        """The defined spelling of ``name``; a FormatError if it was never defined."""
        found = self.resolve(name)
        if found is None:
            raise self.inp.error(
                f"refers to {self.what} {name!r} which is not defined in the file "
                "(is the file truncated?)", line, section, field=field, feature=line.fields[0],
            )
        return found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._where

    def __len__(self) -> int:
        return len(self._where)


def check_refs(
    inp: InpFile, section: str, index: int, name: str, registry: IdRegistry,
    *, skip: Callable[[str], bool] = lambda _v: False,
) -> None:
    """Every line of ``section`` must name a defined id of ``registry`` in field ``index``
    (lines too short to have the field, and values for which ``skip`` is true, pass)."""
    for line in inp.section(section):
        if index < len(line.fields) and not skip(line.fields[index]):
            registry.require(line.fields[index], line, section, name)


def enum_field(
    inp: InpFile, line: InpLine, section: str, index: int, name: str, allowed: Iterable[str],
) -> str:
    """Field ``index`` upper-cased; a FormatError unless it is one of ``allowed``."""
    value = line.fields[index].upper()
    choices = tuple(allowed)
    if value not in choices:
        raise inp.error(
            f"unknown value {line.fields[index]!r}; expected one of {', '.join(choices)}",
            line, section, field=name, feature=line.fields[0],
        )
    return value


# -- coordinates --------------------------------------------------------------------


def resolve_placement(
    inp: InpFile,
    xy: np.ndarray,
    lines: Sequence[InpLine | None],
    placement: Placement | None,
    section: str = "COORDINATES",
) -> Placement:
    """The placement to use for the file coordinates ``xy`` (N x 2).

    With an explicit ``placement`` that is it. Without one the coordinates must already be
    WGS84 lon/lat; otherwise a FormatError names the first line outside the lon/lat
    ranges and says that a CRS or an anchor is needed.
    """
    if placement is not None:
        return placement
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if looks_like_lonlat(xy):
        return Placement()
    bad = int(np.argmax((np.abs(xy[:, 0]) > 180.0) | (np.abs(xy[:, 1]) > 90.0)))
    where = lines[bad] if bad < len(lines) else None
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    raise inp.error(
        f"the network is in a local frame (x {lo[0]:g} to {hi[0]:g}, y {lo[1]:g} to "
        f"{hi[1]:g}), not WGS84 lon/lat: give its CRS (--crs EPSG:xxxx) or an anchor "
        "(--anchor LON,LAT) that places the frame's origin on the Earth",
        where, section, feature=where.fields[0] if where is not None else None,
    )


def export_xy(
    placement: Placement, lonlat: np.ndarray, original: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """File coordinates for the WGS84 positions ``lonlat`` (N x 2), and a mask of the rows
    that are unchanged.

    Where ``original`` (N x 2 file coordinates, NaN where there is none) places within
    :data:`UNCHANGED_DEG` of ``lonlat``, the original is returned as it is, so an
    unedited network writes back exactly the coordinates it was read with.
    """
    ll = np.asarray(lonlat, dtype=float).reshape(-1, 2)
    if len(ll) == 0:
        return ll.copy(), np.zeros(0, dtype=bool)
    out = placement.inverse_xy(ll)
    same = np.zeros(len(ll), dtype=bool)
    if original is not None:
        orig = np.asarray(original, dtype=float).reshape(-1, 2)
        known = np.all(np.isfinite(orig), axis=1)
        if known.any():
            placed = placement.forward_xy(orig[known])
            close = np.all(np.abs(placed - ll[known]) <= UNCHANGED_DEG, axis=1)
            idx = np.flatnonzero(known)[close]
            same[idx] = True
            out[idx] = orig[idx]
    return out, same


def fmt_number(value: float) -> str:
    """A number as an INP field: up to 10 significant digits, no exponent for ordinary
    magnitudes, no trailing zeros."""
    if value == 0:
        return "0"
    text = f"{value:.10g}"
    if "e" in text and 1e-6 <= abs(value) < 1e15:
        text = f"{value:.10f}".rstrip("0").rstrip(".")
    return text


def fmt_row(fields: Sequence[str], width: int = 16, rest: int = 10) -> str:
    """Fields padded into columns as the engines' editors write them: the id in
    ``width`` characters, the others in ``rest``; a field with spaces is quoted."""
    cells = [f'"{f}"' if (not f or any(c.isspace() for c in f)) else f for f in fields]
    padded = [c.ljust(width if i == 0 else rest) for i, c in enumerate(cells)]
    return " ".join(padded).rstrip()
