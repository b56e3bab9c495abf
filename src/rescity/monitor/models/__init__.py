"""Warning models of the monitor: each learns what is normal for a sensor and grades deviations."""
