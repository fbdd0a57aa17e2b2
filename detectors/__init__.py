"""The detectors package."""
