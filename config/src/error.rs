//! Config errors that name the key and where its value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a config value (and so an error about it) came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The config file; `line` is 1-based, `None` when the key is not in the file.
    File {
        /// The file as given on the command line.
        path: PathBuf,
        /// 1-based line of the key (or of the problem, for a syntax error).
        line: Option<usize>,
    },
    /// A `TESSERA_*` environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// A built-in default (a semantic rule failed between defaults and a value set elsewhere).
    Default,
}

/// One problem found while loading the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key (`store.redis_url`, `plugins[0].name`); empty for a file-level problem.
    pub key: String,
    /// Where the offending value came from.
    pub origin: Origin,
    /// What is wrong, in one sentence.
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `FILE:LINE: key: message`, `env VAR: key: message` or `defaults: key: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}: ", path.display())?,
            Origin::File { path, line: None } => write!(f, "{}: ", path.display())?,
            Origin::Env { var } => write!(f, "env {var}: ")?,
            Origin::Default => write!(f, "defaults: ")?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found while loading the config: file errors by line, then env, then defaults.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The problems; never empty when returned by [`crate::load`].
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// The first error about `key`, if any (handy in tests).
    pub fn for_key(&self, key: &str) -> Option<&ConfigError> {
        self.errors.iter().find(|e| e.key == key)
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
