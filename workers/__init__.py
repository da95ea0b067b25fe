"""Worker processes: sleep on NATS, claim queued tasks through the gateway, run them, report back."""
