"""The national four-level warning scale (预警级别): level 1 = red is the highest.

============  =====  ========  ========
level         value  colour    zh-CN
============  =====  ========  ========
normal        0      (none)    正常
I  (一级)      1      red       红色
II (二级)      2      orange    橙色
III (三级)     3      yellow    黄色
IV (四级)      4      blue      蓝色
============  =====  ========  ========

``severity`` counts the other way (0 normal, 1 blue .. 4 red) so that "worse" is
"larger" in comparisons and vectorised code.
"""

from __future__ import annotations

from enum import IntEnum

LEVEL_NAMES: tuple[str, ...] = ("blue", "yellow", "orange", "red")
"""Level names in increasing severity (severity 1..4)."""

_LEVEL_ZH = {"normal": "正常", "blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}


class WarningLevel(IntEnum):
    """The national four-level warning scale: 1 = red (highest) ... 4 = blue; 0 = normal."""

    NORMAL = 0
    RED = 1
    ORANGE = 2
    YELLOW = 3
    BLUE = 4

    @property
    def severity(self) -> int:
        """0 for normal, 1 (blue) .. 4 (red): larger is worse."""
        return 0 if self == WarningLevel.NORMAL else 5 - int(self)

    @classmethod
    def from_severity(cls, severity: int) -> WarningLevel:
        if not 0 <= severity <= 4:
            raise ValueError(f"severity must be 0..4, found {severity}")
        return cls(0 if severity == 0 else 5 - severity)

    @classmethod
    def parse(cls, value: int | str | WarningLevel) -> WarningLevel:
        """A level from its number (``1``), colour (``"red"``) or Chinese name (``"红色"``)."""
        if isinstance(value, WarningLevel):
            return value
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            n = int(value)
            if not 0 <= n <= 4:
                raise ValueError(f"warning level must be 0..4 (1 = red), found {n}")
            return cls(n)
        text = str(value).strip().lower()
        for lvl in cls:
            if text in (lvl.colour, lvl.label_zh, lvl.name.lower()):
                return lvl
        raise ValueError(f"unknown warning level {value!r}: use 1-4 or red/orange/yellow/blue")

    @property
    def colour(self) -> str:
        return "normal" if self == WarningLevel.NORMAL else LEVEL_NAMES[self.severity - 1]

    @property
    def label_zh(self) -> str:
        return _LEVEL_ZH[self.colour]

    def describe(self) -> str:
        """``"level 1 (red)"``."""
        return "normal" if self == WarningLevel.NORMAL else f"level {int(self)} ({self.colour})"
