"""Where each projection got to in the event log, kept in the same database as its view."""
from __future__ import annotations

from pymongo.collection import Collection
from pymongo.database import Database

POSITIONS_COLLECTION = "projection_positions"


class PositionStore:
    def __init__(self, database: Database, name: str) -> None:
        self.collection: Collection = database[POSITIONS_COLLECTION]
        self.name = name

    def load(self) -> int:
        document = self.collection.find_one({"_id": self.name})
        return int(document["position"]) if document else 0

    def save(self, position: int) -> None:
        """Advance the stored position; never move it back (a replayed batch is harmless)."""
        if self.collection.find_one({"_id": self.name}) is None:
            self.collection.insert_one({"_id": self.name, "position": position})
        else:
            self.collection.update_one(
                {"_id": self.name, "position": {"$lt": position}}, {"$set": {"position": position}}
            )
