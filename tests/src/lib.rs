//! Workspace integration tests: the real server against a real Redis and the embedded store.
