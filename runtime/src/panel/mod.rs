//! The operator panel served under `/panel`: its files, embedded in the binary
//! (`assets.rs`), and the dashboard's numbers (`overview.rs`). The pages are plain ES modules
//! over the JSON admin API (`runtime/panel/`); the panel's session and the overview route
//! are in `api/panel.rs`, its cookie credential in `auth/panel_cookie.rs`.

pub mod assets;
pub mod overview;
