"""ResCity: an open platform for running a safety-resilient city (安全韧性城市)."""

__version__ = "0.1.0"
