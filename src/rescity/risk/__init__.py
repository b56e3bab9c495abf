"""Risk register, likelihood x consequence grading, and the live four-colour risk map
(风险清单, 四色风险图) per grid cell, rolled up to streets and districts."""
