"""The one domain model every part of ResCity shares. Imports nothing else of ours."""

from .city import City, Facility, Interdependency, Jurisdiction, ModelError, Sensor
from .enums import AssetRole, DependencyKind, FacilityKind, JurisdictionLevel, NetworkType
from .geo import WGS84, Placement, project, unproject, utm_crs_for
from .network import Link, Network, NetworkError, Node, asset_uid, split_uid
from .units import QUANTITIES, Quantity, UnknownUnitError, from_si, si_unit, to_si

__all__ = [
    "QUANTITIES",
    "WGS84",
    "AssetRole",
    "City",
    "DependencyKind",
    "Facility",
    "FacilityKind",
    "Interdependency",
    "Jurisdiction",
    "JurisdictionLevel",
    "Link",
    "ModelError",
    "Network",
    "NetworkError",
    "NetworkType",
    "Node",
    "Placement",
    "Quantity",
    "Sensor",
    "UnknownUnitError",
    "asset_uid",
    "from_si",
    "project",
    "si_unit",
    "split_uid",
    "to_si",
    "unproject",
    "utm_crs_for",
]

from .publication import PublicWarning, Reference, WarningText, cap_triplet  # noqa: E402

__all__ += ["PublicWarning", "Reference", "WarningText", "cap_triplet"]
