"""The Nightdesk runtime: API, channels, conversation engine, storage, CLI and web UI."""
