"""The ``dashboard`` section of the settings (the Streamlit UI).

Declared here, assembled into the one settings model by the application (``app/settings.py``).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aiops.config import CoreSettings, Section
from aiops.httpauth import UserSettings
from remediation.settings import RemediationSettings

__all__ = ["DashboardSettings", "DashboardConfig"]


class DashboardSettings(Section):
    port: int = Field(8501, ge=1, le=65535, description="Port of the Streamlit dashboard.")
    base_url: str = Field("http://127.0.0.1:8501", description="Public URL, used in links from alerts.")
    users: list[UserSettings] = Field(default_factory=list, description="Dashboard logins: name, role (viewer or "
                                      "operator) and an argon2/bcrypt password_hash (`aiops hash-password`).")


class DashboardConfig(CoreSettings):
    """What the dashboard process loads from the agent's config file: the ground floor's sections,
    its own and remediation's (the configured kill switch); the other sections are the agent's to
    validate, so they are ignored."""

    model_config = SettingsConfigDict(**{**CoreSettings.model_config, "extra": "ignore"})

    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)  # type: ignore[arg-type]
    remediation: RemediationSettings = Field(default_factory=RemediationSettings)  # type: ignore[arg-type]
