//! Who may call what. Today: the system API key that client software sends.

pub mod system_key;
