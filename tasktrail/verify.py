"""`tasktrail verify`: rebuild every view from the event log and compare it with the live views.

Views are a pure function of the log: replaying the log up to the position the live projector
reached must give identical documents. The rebuild goes to a scratch database, so the live views
are never touched; the command prints each difference and exits 1 when there is any.
"""
from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from projections.projector import VIEWS, Projector
from tasktrail.application import TaskTrail

BATCH = 1000


def rebuild(app: TaskTrail, database: Database, up_to: int) -> None:
    """Project the log from the start up to (and including) position `up_to` into `database`."""
    for view in VIEWS:
        database.drop_collection(view.COLLECTION)
    projector = Projector(app, database)
    position = 0
    while position < up_to:
        batch = app.recorder.select_notifications(position, BATCH, stop=up_to, inclusive_of_start=False)
        if not batch:
            return
        projector.apply(batch)
        position = batch[-1].id


def documents(database: Database, collection: str) -> dict[Any, dict]:
    return {document["_id"]: document for document in database[collection].find({})}


def differences(live: Database, rebuilt: Database) -> list[str]:
    found = []
    for view in VIEWS:
        expected, actual = documents(rebuilt, view.COLLECTION), documents(live, view.COLLECTION)
        for key in sorted(set(expected) | set(actual), key=str):
            if key not in actual:
                found.append(f"{view.COLLECTION}/{key}: missing from the live view")
            elif key not in expected:
                found.append(f"{view.COLLECTION}/{key}: in the live view but not in the log")
            elif expected[key] != actual[key]:
                fields = sorted(k for k in set(expected[key]) | set(actual[key])
                                if expected[key].get(k) != actual[key].get(k))
                found.append(f"{view.COLLECTION}/{key}: differs in {', '.join(fields)}")
    return found


def verify(app: TaskTrail, client: MongoClient, database_name: str) -> list[str]:
    live = client[database_name]
    position = Projector(app, live).load_position()
    scratch = client[f"{database_name}_verify"]
    try:
        rebuild(app, scratch, position)
        return differences(live, scratch)
    finally:
        client.drop_database(scratch.name)
