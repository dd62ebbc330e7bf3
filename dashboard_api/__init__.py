"""The FastAPI API and the live dashboard visitors and engineers use."""

from dashboard_api.app import create_app
from dashboard_api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
