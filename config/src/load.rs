//! Loading: file → per-key checks with line numbers → env overrides → semantic validation.
//!
//! Every key is checked on its own by deserializing a one-key table into its section's struct
//! (all fields have defaults, unknown fields are denied), so one bad value never hides another
//! and each error carries exactly its key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};
use toml::{Spanned, Table, Value};

use crate::error::{ConfigError, ConfigErrors, Origin};
use crate::{
    AuthConfig, Config, DEFAULT_PRODUCT, EnvelopeConfig, EventsConfig, LicensesConfig, LogConfig,
    PlanConfig, PluginConfig, PolicyConfig, PresetConfig, ProductConfig, RateLimitConfig,
    SecurityConfig, ServerConfig, SessionsConfig, StoreConfig, WebhooksConfig,
};

/// Prefix of environment overrides: `TESSERA_<SECTION>_<KEY>`.
pub const ENV_PREFIX: &str = "TESSERA_";

/// `TESSERA_*` variables that are not settings (the CLI reads them itself).
const ENV_NOT_SETTINGS: &[&str] = &["TESSERA_CONFIG", "TESSERA_ADMIN_KEY"];

/// Sections that have plain keys, longest first so `RATE_LIMIT_...` is not read as `RATE`.
const SECTIONS: &[&str] = &[
    "rate_limit",
    "licenses",
    "sessions",
    "envelope",
    "security",
    "server",
    "policy",
    "store",
    "auth",
    "log",
    "events",
    "webhooks",
];

/// Sections only the file can set (their names are user-chosen, so no env form).
const TABLE_SECTIONS: &[&str] = &["plans", "presets", "products", "plugins"];

/// Loads the config from `path` (or defaults when `None`) and the process environment.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    load_with_env(path, std::env::vars())
}

/// Like [`load`], but with an explicit environment (tests pass their own instead of mutating
/// the process's).
pub fn load_with_env(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigErrors> {
    let text = match path {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                return Err(ConfigErrors {
                    errors: vec![ConfigError {
                        key: String::new(),
                        origin: Origin::File {
                            path: p.to_owned(),
                            line: None,
                        },
                        message: format!("cannot read config file: {e}"),
                    }],
                });
            }
        },
        None => String::new(),
    };
    load_str(&text, path, env)
}

/// Loads the config from TOML `text`; `path` only names it in errors.
pub fn load_str(
    text: &str,
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigErrors> {
    let mut cx = Cx {
        path: path.map(Path::to_owned),
        lines: HashMap::new(),
        env_keys: HashMap::new(),
        errors: Vec::new(),
        text,
    };

    let mut root: Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| cx.line_of(s.start));
            return Err(ConfigErrors {
                errors: vec![ConfigError {
                    key: String::new(),
                    origin: cx.file_origin(line),
                    message: format!("invalid TOML: {}", e.message().trim()),
                }],
            });
        }
    };
    if let Ok(spanned) = DeTable::parse(text) {
        let mut lines = HashMap::new();
        record_lines(&cx, spanned.get_ref(), "", &mut lines);
        cx.lines = lines;
    }

    check_file(&mut cx, &mut root);
    apply_env(&mut cx, &mut root, env);

    let mut config = match Value::Table(root).try_into::<Config>() {
        Ok(c) => c,
        Err(e) => {
            // Unreachable in practice: every key passed on its own above.
            cx.errors.push(ConfigError {
                key: String::new(),
                origin: cx.file_origin(None),
                message: e.message().to_owned(),
            });
            Config::default()
        }
    };
    complete(&mut config);
    crate::validate::validate(&config, &mut cx);

    if cx.errors.is_empty() {
        Ok(config)
    } else {
        // File order first (what an operator fixes top to bottom), then env, then defaults.
        cx.errors.sort_by_key(|e| match &e.origin {
            Origin::File { line, .. } => (0, line.unwrap_or(0)),
            Origin::Env { .. } => (1, 0),
            Origin::Default => (2, 0),
        });
        Err(ConfigErrors { errors: cx.errors })
    }
}

/// Fills in what the file may leave out: the default product and product display names.
fn complete(config: &mut Config) {
    config
        .products
        .entry(DEFAULT_PRODUCT.to_owned())
        .or_insert_with(|| ProductConfig::named(DEFAULT_PRODUCT));
    for (id, p) in &mut config.products {
        if p.name.is_empty() {
            p.name.clone_from(id);
        }
    }
}

/// Load context: where each dotted key came from, and the errors so far.
pub(crate) struct Cx<'t> {
    path: Option<PathBuf>,
    /// Dotted key → 1-based line in the file.
    lines: HashMap<String, usize>,
    /// Dotted key → environment variable that set it.
    env_keys: HashMap<String, String>,
    errors: Vec<ConfigError>,
    text: &'t str,
}

impl Cx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn file_origin(&self, line: Option<usize>) -> Origin {
        Origin::File {
            path: self
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from("tessera.toml")),
            line,
        }
    }

    /// Where `key` was set: env beats file; `Default` when set nowhere.
    pub(crate) fn origin(&self, key: &str) -> Option<Origin> {
        if let Some(var) = self.env_keys.get(key) {
            return Some(Origin::Env { var: var.clone() });
        }
        self.lines
            .get(key)
            .map(|&line| self.file_origin(Some(line)))
    }

    /// Records an error about `key`, located where it was set.
    pub(crate) fn error(&mut self, key: &str, message: impl Into<String>) {
        let origin = self.origin(key).unwrap_or(Origin::Default);
        self.errors.push(ConfigError {
            key: key.to_owned(),
            origin,
            message: message.into(),
        });
    }

    /// Records an error about a rule between `keys`, attributed to the first one explicitly set.
    pub(crate) fn error_any(&mut self, keys: &[&str], message: impl Into<String>) {
        let key = keys
            .iter()
            .find(|k| self.origin(k).is_some())
            .or(keys.first())
            .copied()
            .unwrap_or_default();
        self.error(key, message);
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn record_lines(cx: &Cx<'_>, table: &DeTable<'_>, prefix: &str, out: &mut HashMap<String, usize>) {
    for (k, v) in table {
        let key = join(prefix, k.get_ref());
        out.insert(key.clone(), cx.line_of(k.span().start));
        record_value_lines(cx, v, &key, out);
    }
}

fn record_value_lines(
    cx: &Cx<'_>,
    v: &Spanned<DeValue<'_>>,
    key: &str,
    out: &mut HashMap<String, usize>,
) {
    match v.get_ref() {
        DeValue::Table(t) => record_lines(cx, t, key, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let ik = format!("{key}[{i}]");
                out.insert(ik.clone(), cx.line_of(item.span().start));
                record_value_lines(cx, item, &ik, out);
            }
        }
        _ => {}
    }
}

/// Checks one key by deserializing a one-key table into the section type `T`.
fn check_one<T: DeserializeOwned>(key: &str, value: &Value) -> Result<(), String> {
    let mut one = Table::new();
    one.insert(key.to_owned(), value.clone());
    Value::Table(one)
        .try_into::<T>()
        .map(|_| ())
        .map_err(|e| e.message().to_owned())
}

/// Checks `key = value` of the plain section `section`.
fn check_section_key(section: &str, key: &str, value: &Value) -> Result<(), String> {
    match section {
        "server" => check_one::<ServerConfig>(key, value),
        "log" => check_one::<LogConfig>(key, value),
        "auth" => check_one::<AuthConfig>(key, value),
        "security" => check_one::<SecurityConfig>(key, value),
        "rate_limit" => check_one::<RateLimitConfig>(key, value),
        "store" => check_one::<StoreConfig>(key, value),
        "licenses" => check_one::<LicensesConfig>(key, value),
        "sessions" => check_one::<SessionsConfig>(key, value),
        "envelope" => check_one::<EnvelopeConfig>(key, value),
        "policy" => check_one::<PolicyConfig>(key, value),
        "events" => check_one::<EventsConfig>(key, value),
        "webhooks" => check_one::<WebhooksConfig>(key, value),
        _ => Err(format!("unknown section `{section}`")),
    }
}

/// Checks every key of a table against `check`, removing bad ones so loading can go on.
fn check_table(
    cx: &mut Cx<'_>,
    table: &mut Table,
    prefix: &str,
    check: &dyn Fn(&str, &Value) -> Result<(), String>,
) {
    let mut bad = Vec::new();
    for (k, v) in table.iter() {
        if let Err(msg) = check(k, v) {
            cx.error(&join(prefix, k), msg);
            bad.push(k.clone());
        }
    }
    for k in bad {
        table.remove(&k);
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Checks a `[plans.*]` / `[products.*]` map: each entry a table of `T` keys.
fn check_named_tables<T: DeserializeOwned>(cx: &mut Cx<'_>, section: &str, value: &mut Value) {
    let Value::Table(entries) = value else {
        cx.error(
            section,
            format!("must be a table of tables ([{section}.<name>])"),
        );
        *value = Value::Table(Table::new());
        return;
    };
    let mut bad = Vec::new();
    for (name, entry) in entries.iter_mut() {
        let key = join(section, name);
        if !valid_name(name) {
            cx.error(&key, "names may use only letters, digits, `_`, `-` and `.`");
            bad.push(name.clone());
            continue;
        }
        match entry {
            Value::Table(t) => check_table(cx, t, &key, &check_one::<T>),
            _ => {
                cx.error(&key, format!("must be a table ([{section}.{name}])"));
                bad.push(name.clone());
            }
        }
    }
    for name in bad {
        entries.remove(&name);
    }
}

fn check_plugins(cx: &mut Cx<'_>, value: &mut Value) {
    let Value::Array(items) = value else {
        cx.error("plugins", "must be an array of tables ([[plugins]])");
        *value = Value::Array(Vec::new());
        return;
    };
    for (i, item) in items.iter_mut().enumerate() {
        let key = format!("plugins[{i}]");
        match item {
            Value::Table(t) => check_table(cx, t, &key, &check_one::<PluginConfig>),
            _ => {
                cx.error(&key, "must be a table ([[plugins]])");
                *item = Value::Table(Table::new());
            }
        }
    }
}

fn check_file(cx: &mut Cx<'_>, root: &mut Table) {
    let mut bad = Vec::new();
    for (section, value) in root.iter_mut() {
        match section.as_str() {
            "plans" => check_named_tables::<PlanConfig>(cx, section, value),
            "products" => check_named_tables::<ProductConfig>(cx, section, value),
            "presets" => check_named_tables::<PresetConfig>(cx, section, value),
            "plugins" => check_plugins(cx, value),
            s if SECTIONS.contains(&s) => match value {
                Value::Table(t) => {
                    let s = s.to_owned();
                    check_table(cx, t, &s, &|k, v| check_section_key(&s, k, v));
                }
                _ => {
                    cx.error(section, format!("must be a table ([{section}])"));
                    bad.push(section.clone());
                }
            },
            _ => {
                let mut expected: Vec<&str> = SECTIONS.to_vec();
                expected.extend(TABLE_SECTIONS);
                expected.sort_unstable();
                cx.error(
                    section,
                    format!(
                        "unknown section `{section}`, expected one of {}",
                        expected.join(", ")
                    ),
                );
                bad.push(section.clone());
            }
        }
    }
    for s in bad {
        root.remove(&s);
    }
}

/// Candidate TOML values for an env string: as a TOML value, as a plain string, as a
/// comma-separated list of strings; the first the key accepts wins.
fn env_candidates(raw: &str) -> Vec<Value> {
    let mut out = Vec::new();
    if let Ok(mut t) = toml::from_str::<Table>(&format!("v = {raw}"))
        && let Some(v) = t.remove("v")
    {
        out.push(v);
    }
    out.push(Value::String(raw.to_owned()));
    if raw.contains(',') || out.len() == 1 {
        out.push(Value::Array(
            raw.split(',')
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ));
    }
    out
}

fn apply_env(cx: &mut Cx<'_>, root: &mut Table, env: impl IntoIterator<Item = (String, String)>) {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_NOT_SETTINGS.contains(&k.as_str()))
        .collect();
    vars.sort();
    for (var, raw) in vars {
        let rest = var[ENV_PREFIX.len()..].to_ascii_lowercase();
        let split = SECTIONS.iter().find_map(|s| {
            rest.strip_prefix(s)
                .and_then(|r| r.strip_prefix('_'))
                .filter(|k| !k.is_empty())
                .map(|k| (*s, k.to_owned()))
        });
        let Some((section, key)) = split else {
            cx.errors.push(ConfigError {
                key: String::new(),
                origin: Origin::Env { var: var.clone() },
                message: format!(
                    "unknown setting: use TESSERA_<SECTION>_<KEY> with SECTION one of {} \
                     (plans, presets, products and plugins are set in the file only)",
                    SECTIONS.join(", ").to_ascii_uppercase()
                ),
            });
            continue;
        };
        let dotted = join(section, &key);
        let mut first_err = None;
        let mut accepted = None;
        for candidate in env_candidates(&raw) {
            match check_section_key(section, &key, &candidate) {
                Ok(()) => {
                    accepted = Some(candidate);
                    break;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match accepted {
            Some(v) => {
                let entry = root
                    .entry(section.to_owned())
                    .or_insert_with(|| Value::Table(Table::new()));
                if let Value::Table(t) = entry {
                    t.insert(key, v);
                    cx.env_keys.insert(dotted, var);
                }
            }
            None => {
                cx.errors.push(ConfigError {
                    key: dotted,
                    origin: Origin::Env { var },
                    message: first_err.unwrap_or_else(|| "invalid value".to_owned()),
                });
            }
        }
    }
}
