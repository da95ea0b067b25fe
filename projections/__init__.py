"""Read models built from the event log: MongoDB views that queries are answered from."""
