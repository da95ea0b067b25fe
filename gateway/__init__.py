"""The aiohttp gateway: ClearML-style HTTP API over the TaskTrail application and views."""
