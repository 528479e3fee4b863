//! Tessera license server: HTTP API, auth, rate limits, store adapters, metrics, CLI.
