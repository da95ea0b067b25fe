"""The pure domain model of TaskTrail: aggregates, their events and rules. No I/O here."""
