"""The remediation package."""
