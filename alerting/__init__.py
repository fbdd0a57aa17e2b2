"""The alerting package."""
