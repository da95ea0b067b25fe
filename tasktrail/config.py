"""Settings from environment variables, with local defaults. Only composition roots read them."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path



@dataclass(frozen=True)
class Subjects:
    """NATS names of one TaskTrail installation; the namespace lets several share a NATS server."""

    namespace: str = "tasktrail"

    @property
    def events_stream(self) -> str:
        return f"{self.namespace.upper().replace('.', '_').replace('-', '_')}_EVENTS"

    @property
    def events_prefix(self) -> str:
        return f"{self.namespace}.events"

    @property
    def log_appended(self) -> str:
        return f"{self.namespace}.log.appended"

    def event(self, aggregate: str, event_type: str, aggregate_id: str) -> str:
        return f"{self.events_prefix}.{aggregate}.{event_type}.{aggregate_id}"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    mongodb_uri: str
    nats_url: str
    api_url: str
    event_store_env: dict[str, str] = field(default_factory=dict)
    access_key: str = ""
    secret_key: str = ""
    auth_secret: str = ""  # signs the API's JWTs; every gateway replica needs the same one
    subjects: Subjects = field(default_factory=Subjects)
    # A worker's status report refreshes its running task's last_worker_report at most this often (seconds).
    task_report_interval: float = 10.0

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
        mongodb_uri=os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017"),
        nats_url=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        api_url=os.environ.get("TASKTRAIL_API_URL", "http://127.0.0.1:8008"),
        event_store_env=event_store_env(data_dir),
        access_key=os.environ.get("TASKTRAIL_ACCESS_KEY", ""),
        secret_key=os.environ.get("TASKTRAIL_SECRET_KEY", ""),
        auth_secret=os.environ.get("TASKTRAIL_AUTH_SECRET", ""),
        subjects=Subjects(os.environ.get("TASKTRAIL_NAMESPACE", "tasktrail")),
        task_report_interval=float(os.environ.get("TASKTRAIL_TASK_REPORT_INTERVAL") or 10.0),
    )
