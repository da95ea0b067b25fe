"""The API key pair and the token signing secret: from the environment, else from the data folder.

With no TASKTRAIL_ACCESS_KEY/TASKTRAIL_SECRET_KEY (or no TASKTRAIL_AUTH_SECRET), the embedded
default generates them once and keeps them in `<data_dir>/credentials.json` (mode 0600), so the
gateway, the worker and the next `tasktrail up` on the same folder all agree. The file is
published with a hard link, so processes starting together never read a half-written file and
all end up with the first one written.
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from tasktrail.config import Settings

CREDENTIALS_FILE = "credentials.json"
_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class LocalCredentials:
    access_key: str
    secret_key: str
    auth_secret: str


def generate_credentials() -> LocalCredentials:
    return LocalCredentials(
        access_key="".join(secrets.choice(_KEY_ALPHABET) for _ in range(24)),
        secret_key=secrets.token_urlsafe(36),
        auth_secret=secrets.token_urlsafe(48),
    )


def local_credentials(data_dir: Path) -> LocalCredentials:
    """The data folder's credentials, created (mode 0600) the first time they are asked for."""
    path = data_dir / CREDENTIALS_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        draft = data_dir / f".{CREDENTIALS_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(dataclasses.asdict(generate_credentials()), file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process published its credentials first: everyone uses those
        finally:
            draft.unlink()
    stored = json.loads(path.read_text())
    return LocalCredentials(stored["access_key"], stored["secret_key"], stored["auth_secret"])


def complete_credentials(access_key: str, secret_key: str, auth_secret: str, data_dir: Path) -> LocalCredentials:
    """The given key pair and secret, with what is missing taken from the data folder."""
    if bool(access_key) != bool(secret_key):
        raise ValueError("set both TASKTRAIL_ACCESS_KEY and TASKTRAIL_SECRET_KEY, or neither")
    if access_key and auth_secret:
        return LocalCredentials(access_key, secret_key, auth_secret)
    local = local_credentials(data_dir)
    return LocalCredentials(
        access_key or local.access_key, secret_key or local.secret_key, auth_secret or local.auth_secret
    )


def with_credentials(settings: Settings) -> Settings:
    """Settings whose key pair and signing secret are complete, from the data folder where missing."""
    complete = complete_credentials(settings.access_key, settings.secret_key, settings.auth_secret, settings.data_dir)
    return dataclasses.replace(settings, **dataclasses.asdict(complete))
