//! License and session state machines, shard actors, and the Store and Policy ports.
