"""Reading a hazard spec: ``load_scenario(path_or_dict)`` -> the validated hazard.

A spec is a YAML or JSON mapping whose ``kind`` names the hazard:

.. code-block:: yaml

    kind: earthquake
    lon: 24.94
    lat: 60.17
    magnitude: 6.0
    depth_km: 10

Kinds: ``earthquake``, ``rainstorm``, ``pipe_burst``, ``power_outage``, ``gas_leak``.
Errors (:class:`~rescity.simulate.hazards.base.HazardError`) name the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from rescity.model import City

from .base import HazardError, format_validation_error
from .earthquake import Earthquake
from .point_events import GasLeak, PipeBurst, PowerOutage
from .rainstorm import Rainstorm

Hazard = Earthquake | Rainstorm | PipeBurst | PowerOutage | GasLeak
HAZARD_KINDS: dict[str, type[Earthquake | Rainstorm | PipeBurst | PowerOutage | GasLeak]] = {
    "earthquake": Earthquake,
    "rainstorm": Rainstorm,
    "pipe_burst": PipeBurst,
    "power_outage": PowerOutage,
    "gas_leak": GasLeak,
}
_ADAPTER: TypeAdapter[Hazard] = TypeAdapter(Annotated[Hazard, Field(discriminator="kind")])


def load_scenario(source: str | Path | dict[str, Any], city: City | None = None) -> Hazard:
    """Read and validate a hazard spec from a YAML/JSON file (path) or a mapping.

    With ``city``, the spec is also checked against it (``check_city``: the assets it
    names exist, the epicentre is near the city). Raises :class:`HazardError`."""
    where = "scenario"
    if isinstance(source, dict):
        data: Any = source
    else:
        path = Path(source)
        where = f"scenario {str(path)!r}"
        if not path.is_file():
            raise HazardError(f"{where}: no such file")
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise HazardError(
                f"{where}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}"
            ) from None
    if not isinstance(data, dict):
        raise HazardError(
            f"{where}: expected a mapping with a 'kind' field, found {type(data).__name__}"
        )
    kind = data.get("kind")
    if kind not in HAZARD_KINDS:
        raise HazardError(
            f"{where} field 'kind': expected one of {', '.join(HAZARD_KINDS)}, found {kind!r}"
        )
    try:
        hazard = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        # drop the discriminator's own level from the field path
        msg = format_validation_error(exc, where).replace(f"'{kind}.", "'")
        raise HazardError(msg) from None
    if city is not None:
        hazard.check_city(city)
    return hazard
