"""Who is calling: the identity a key pair stands for, as ClearML puts it in its tokens."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Where the `authenticate` middleware leaves the caller's identity on the request.
IDENTITY_KEY = "tasktrail.identity"


@dataclass(frozen=True)
class Identity:
    user: str
    company: str
    role: str
    user_name: str
    company_name: str

    def claims(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_claims(cls, claims: Any) -> Identity:
        """Raises ValueError unless `claims` is an object with every identity field as a string."""
        if not isinstance(claims, dict):
            raise ValueError("identity must be an object")
        values = {name: claims.get(name) for name in cls.__dataclass_fields__}
        if not all(isinstance(value, str) and value for value in values.values()):
            raise ValueError("identity lacks a field")
        return cls(**values)


# The one user the configured key pair stands for (TaskTrail has no user directory yet).
DEFAULT_IDENTITY = Identity(
    user="tasktrail", company="tasktrail", role="user", user_name="tasktrail", company_name="TaskTrail"
)
