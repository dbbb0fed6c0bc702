"""Settings of one web server, passed explicitly to ``create_app`` (no global config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database_url: str = Field(description="SQLAlchemy URL; SQLite file by default, PostgreSQL for teams")
    session_hours: float = Field(12.0, gt=0, description="a login expires this long after it was made")
    secure_cookies: bool = Field(False, description="mark cookies Secure: set it when served over HTTPS")
    login_max_failures: int = Field(5, ge=1, description="failed logins per username from one client address "
                                    "within the window")
    login_max_failures_per_address: int = Field(20, ge=1, description="failed logins per client address within the window")
    login_max_failures_per_username: int = Field(50, ge=1, description="failed logins per username from all "
                                                 "addresses within the window")
    login_window_minutes: float = Field(15.0, gt=0)
    login_max_waiting: int = Field(32, ge=1, description="password checks queued at once; more logins are answered "
                                   "'busy, try again' without hashing")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="larger request bodies are refused (413) before "
                                "they are read")
    model_timeout_s: float = Field(120.0, gt=0, description="a model call taking longer shows an error and a Retry button")
    max_message_chars: int = Field(4000, ge=1)
    wellbeing_min_responses: int = Field(3, ge=1, description="survey means are shown to admins only from this many answers")
    db_threads: int = Field(4, ge=1, le=64, description="threads doing database work; each keeps one pooled "
                            "connection. More threads than cores only add contention for Python's GIL")
