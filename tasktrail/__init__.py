"""TaskTrail's composition: configuration, event store, log follower, relay, launcher and CLI."""
