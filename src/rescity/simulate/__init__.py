"""Scenario simulation (仿真推演): hazards -> damage (fragility) -> network engines (WNTR,
SWMM, pandapower, the road graph) -> cascade over the interdependencies -> restoration by
crews -> the resilience curve and its metrics; ensembles over Dask workers."""
