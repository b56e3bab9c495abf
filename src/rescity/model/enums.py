"""Controlled vocabularies shared by every part of ResCity.

Each enum carries an English value (used in files, the API and the database) and,
where people read it, a Chinese label (``label_zh``).
"""

from __future__ import annotations

from enum import StrEnum


class _Labelled(StrEnum):
    """A string enum whose members have a zh-CN label."""

    @property
    def label_zh(self) -> str:
        return _ZH.get(self.value, self.value)


class NetworkType(_Labelled):
    """The lifeline classes of the twin (城市生命线)."""

    WATER = "water"  # 供水
    DRAINAGE = "drainage"  # 排水
    GAS = "gas"  # 燃气
    POWER = "power"  # 电力
    ROAD = "road"  # 道路
    BRIDGE = "bridge"  # 桥梁
    UTILITY_TUNNEL = "utility_tunnel"  # 综合管廊


class JurisdictionLevel(_Labelled):
    """The tiers of territorial management, largest first: district > street/town > grid cell."""

    DISTRICT = "district"  # 区县
    STREET = "street"  # 街镇
    GRID = "grid"  # 网格

    @property
    def depth(self) -> int:
        return _LEVEL_DEPTH[self]

    @property
    def child(self) -> JurisdictionLevel | None:
        order = list(JurisdictionLevel)
        i = order.index(self)
        return order[i + 1] if i + 1 < len(order) else None


_LEVEL_DEPTH = {JurisdictionLevel.DISTRICT: 0, JurisdictionLevel.STREET: 1, JurisdictionLevel.GRID: 2}


class FacilityKind(_Labelled):
    """Critical facilities whose loss of service matters to people."""

    HOSPITAL = "hospital"
    SCHOOL = "school"
    SHELTER = "shelter"
    PUMPING_STATION = "pumping_station"
    SUBSTATION = "substation"
    TREATMENT_PLANT = "treatment_plant"
    FIRE_STATION = "fire_station"


class DependencyKind(_Labelled):
    """How one asset depends on another (an explicit interdependency table, as in InfraRisk)."""

    POWER_SUPPLY = "power_supply"  # the dependent needs electricity from the supporting asset
    WATER_SUPPLY = "water_supply"  # the dependent needs water from the supporting asset
    ROAD_ACCESS = "road_access"  # crews and people reach the dependent through this road node
    SPATIAL_ADJACENCY = "spatial_adjacency"  # within a hazardous distance (gas near a manhole)


class AssetRole(StrEnum):
    """What kind of element an asset is, whatever its network."""

    NODE = "node"
    LINK = "link"
    FACILITY = "facility"


_ZH = {
    "water": "供水",
    "drainage": "排水",
    "gas": "燃气",
    "power": "电力",
    "road": "道路",
    "bridge": "桥梁",
    "utility_tunnel": "综合管廊",
    "district": "区县",
    "street": "街镇",
    "grid": "网格",
    "hospital": "医院",
    "school": "学校",
    "shelter": "避难场所",
    "pumping_station": "泵站",
    "substation": "变电站",
    "treatment_plant": "水厂",
    "fire_station": "消防站",
    "power_supply": "供电依赖",
    "water_supply": "供水依赖",
    "road_access": "道路通达",
    "spatial_adjacency": "空间邻近",
}
