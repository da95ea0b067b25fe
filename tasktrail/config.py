"""Settings from environment variables, with local defaults. Only composition roots read them."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

EVENTS_STREAM = "TASKTRAIL_EVENTS"
EVENTS_SUBJECT_PREFIX = "tasktrail.events"
LOG_APPENDED_SUBJECT = "tasktrail.log.appended"
CONTROL_SUBJECT_PREFIX = "tasktrail.control"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    mongodb_uri: str
    nats_url: str
    api_url: str
    event_store_env: dict[str, str] = field(default_factory=dict)
    access_key: str = ""
    secret_key: str = ""

    @property
    def mongodb_database(self) -> str:
        return os.environ.get("TASKTRAIL_MONGODB_DB", "tasktrail")


def event_store_env(data_dir: Path) -> dict[str, str]:
    """eventsourcing's own settings: PostgreSQL when PERSISTENCE_MODULE says so, else SQLite in data_dir."""
    env: dict[str, str] = {"AGGREGATE_CACHE_MAXSIZE": os.environ.get("AGGREGATE_CACHE_MAXSIZE", "10000")}
    if not os.environ.get("PERSISTENCE_MODULE"):
        env["PERSISTENCE_MODULE"] = "eventsourcing.sqlite"
        env["SQLITE_DBNAME"] = os.environ.get("SQLITE_DBNAME", str(data_dir / "events.sqlite"))
    return env


def load_settings() -> Settings:
    data_dir = Path(os.environ.get("TASKTRAIL_DATA_DIR", ".tasktrail")).resolve()
    return Settings(
        data_dir=data_dir,
        mongodb_uri=os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/tasktrail"),
        nats_url=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        api_url=os.environ.get("TASKTRAIL_API_URL", "http://127.0.0.1:8008"),
        event_store_env=event_store_env(data_dir),
        access_key=os.environ.get("TASKTRAIL_ACCESS_KEY", ""),
        secret_key=os.environ.get("TASKTRAIL_SECRET_KEY", ""),
    )
