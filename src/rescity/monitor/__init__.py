"""Monitoring and early warning: ingestion, validation, warning engine, alarms."""
