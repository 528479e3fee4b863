//! Typed Tessera configuration: defaults, validation with line numbers, env overrides.
