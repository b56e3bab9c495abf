"""Where the public benchmark datasets (NAB, BattLeDIM) are found.

``$RESCITY_DATASETS/<name>`` if set; else ``../shared/datasets/<name>`` beside the
repository (a development checkout); else ``/work/shared/datasets/<name>`` (the project
machines, where a clean clone may live anywhere). Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

_MACHINE_ROOT = Path("/work/shared/datasets")


def dataset_dir(name: str) -> Path:
    """The folder of dataset ``name`` (the first candidate that exists, else the last)."""
    env = os.environ.get("RESCITY_DATASETS")
    cands = [Path(env) / name] if env else []
    cands += [Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / name,
              _MACHINE_ROOT / name]
    for c in cands:
        if c.is_dir():
            return c
    return cands[-1]
