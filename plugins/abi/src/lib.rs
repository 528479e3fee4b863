//! Event and decision types shared by the Tessera plugin host and SDK (ABI v1).
