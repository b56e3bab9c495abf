"""Reading a policy or catalogue that a city keeps as YAML, validated by a pydantic model,
with errors that name the file and the field (``file: routes.0.units: field required``)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)


def load_yaml_model(path: str | Path, model: type[T], error: type[Exception], what: str) -> T:
    """``model`` validated from the YAML file ``path``; ``error(message)`` for a missing
    file, bad YAML or the first validation error (``what`` names the kind of file)."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{p}: no such {what} file") from None
    except yaml.YAMLError as e:
        raise error(f"{p}: not valid YAML: {e}") from None
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise error(f"{p}: {loc}: {first['msg']}") from None
