//! Static ABI validation of a compiled module.

use serde::Serialize;
use tessera_plugin_abi::wire::{
    ABI_MARKER_EXPORT, ABI_MARKER_PREFIX, ABI_VERSION, ALLOC_EXPORT, HOST_MODULE, INIT_EXPORT,
    MEMORY_EXPORT,
};
use tessera_plugin_abi::{Hook, HookSet};
use wasmtime::{ExternType, FuncType, Module, ValType};

use crate::error::PluginError;

/// What `tessera plugin check` reports about a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleInfo {
    /// The ABI version the module implements (always 1 for an accepted module).
    pub abi_version: u32,
    /// The hooks it exports, in ABI order.
    pub hooks: Vec<Hook>,
    /// The host functions it imports (names in module `tessera`).
    pub imports: Vec<String>,
    /// Exports named like a hook (`on_*`) that this host does not know; never called.
    pub ignored_exports: Vec<String>,
}

impl ModuleInfo {
    /// The hooks as a set.
    #[must_use]
    pub fn hook_set(&self) -> HookSet {
        self.hooks.iter().copied().collect()
    }
}

#[derive(Clone, Copy)]
enum W {
    I32,
    I64,
}

/// The host functions of ABI v1: name, params, results.
const HOST_FUNCTIONS: &[(&str, &[W], &[W])] = &[
    ("log", &[W::I32, W::I32, W::I32], &[]),
    ("now_ms", &[], &[W::I64]),
    (
        "kv_get",
        &[W::I32, W::I32, W::I32, W::I32, W::I32],
        &[W::I32],
    ),
    (
        "kv_set",
        &[W::I32, W::I32, W::I32, W::I32, W::I64, W::I32],
        &[W::I32],
    ),
    (
        "kv_incr",
        &[W::I32, W::I32, W::I64, W::I64, W::I32],
        &[W::I64],
    ),
    ("kv_delete", &[W::I32, W::I32, W::I32], &[W::I32]),
    ("config_get", &[W::I32, W::I32, W::I32, W::I32], &[W::I32]),
    ("metric_incr", &[W::I32, W::I32, W::I64], &[W::I32]),
];

fn same(vals: impl ExactSizeIterator<Item = ValType>, want: &[W]) -> bool {
    vals.len() == want.len()
        && vals.zip(want).all(|(v, w)| match w {
            W::I32 => matches!(v, ValType::I32),
            W::I64 => matches!(v, ValType::I64),
        })
}

fn sig(ty: &FuncType, params: &[W], results: &[W]) -> bool {
    same(ty.params(), params) && same(ty.results(), results)
}

fn show(ws: &[W]) -> String {
    let parts: Vec<&str> = ws
        .iter()
        .map(|w| match w {
            W::I32 => "i32",
            W::I64 => "i64",
        })
        .collect();
    format!("({})", parts.join(", "))
}

fn show_ty(ty: &FuncType) -> String {
    let p: Vec<String> = ty.params().map(|v| v.to_string()).collect();
    let r: Vec<String> = ty.results().map(|v| v.to_string()).collect();
    format!("({}) -> ({})", p.join(", "), r.join(", "))
}

fn expect_func(
    module: &Module,
    name: &str,
    params: &[W],
    results: &[W],
    what: &str,
) -> Result<(), PluginError> {
    match module.get_export(name) {
        Some(ExternType::Func(ty)) if sig(&ty, params, results) => Ok(()),
        Some(ExternType::Func(ty)) => Err(PluginError::Abi(format!(
            "export `{name}` has type {}, ABI v1 requires {} -> {} ({what})",
            show_ty(&ty),
            show(params),
            show(results)
        ))),
        Some(_) => Err(PluginError::Abi(format!(
            "export `{name}` must be a function ({what})"
        ))),
        None => Err(PluginError::Abi(format!(
            "missing export `{name}` ({what})"
        ))),
    }
}

/// Checks a compiled module against ABI v1 and lists what it exports and imports.
pub(crate) fn inspect(module: &Module) -> Result<ModuleInfo, PluginError> {
    // Version marker first: a plugin of another ABI fails with the most useful message.
    let markers: Vec<String> = module
        .exports()
        .filter(|e| e.name().starts_with(ABI_MARKER_PREFIX))
        .map(|e| e.name().to_owned())
        .collect();
    if !markers.iter().any(|m| m == ABI_MARKER_EXPORT) {
        return Err(PluginError::Abi(match markers.first() {
            Some(other) => format!(
                "the module exports `{other}`, built for ABI v{}; this host supports ABI v{ABI_VERSION} \
                 (export `{ABI_MARKER_EXPORT}`): rebuild it with an SDK for ABI v{ABI_VERSION}",
                &other[ABI_MARKER_PREFIX.len()..]
            ),
            None => format!(
                "missing export `{ABI_MARKER_EXPORT}`: not a Tessera policy plugin \
                 (a plugin for ABI v{ABI_VERSION} exports a function `{ABI_MARKER_EXPORT}: () -> ()`)"
            ),
        }));
    }
    expect_func(module, ABI_MARKER_EXPORT, &[], &[], "the ABI v1 marker")?;

    match module.get_export(MEMORY_EXPORT) {
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        Some(ExternType::Memory(_)) => {
            return Err(PluginError::Abi(
                "export `memory` must be a 32-bit, non-shared linear memory".into(),
            ));
        }
        _ => {
            return Err(PluginError::Abi(
                "missing export `memory` (the linear memory)".into(),
            ));
        }
    }
    expect_func(
        module,
        ALLOC_EXPORT,
        &[W::I32],
        &[W::I32],
        "alloc(len) -> ptr",
    )?;
    expect_func(
        module,
        INIT_EXPORT,
        &[W::I32, W::I32],
        &[W::I32],
        "init(ptr, len) -> status",
    )?;

    let mut hooks = Vec::new();
    let mut ignored_exports = Vec::new();
    for export in module.exports() {
        let name = export.name();
        if let Some(hook) = Hook::from_export(name) {
            expect_func(
                module,
                name,
                &[W::I32, W::I32],
                &[W::I64],
                "a hook: on_<hook>(ptr, len) -> packed decision",
            )?;
            hooks.push(hook);
        } else if name.starts_with("on_") {
            ignored_exports.push(name.to_owned());
        }
    }
    hooks.sort();

    let mut imports = Vec::new();
    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        if m != HOST_MODULE {
            let hint = if m.starts_with("wasi") {
                ": WASI is not available to plugins; build for wasm32-unknown-unknown"
            } else {
                ""
            };
            return Err(PluginError::Abi(format!(
                "import `{m}.{n}` is not provided: plugins may import only functions of module `{HOST_MODULE}`{hint}"
            )));
        }
        let Some((_, params, results)) = HOST_FUNCTIONS.iter().find(|(name, _, _)| *name == n)
        else {
            let known: Vec<&str> = HOST_FUNCTIONS.iter().map(|(name, _, _)| *name).collect();
            return Err(PluginError::Abi(format!(
                "import `{m}.{n}` is not a host function of ABI v1 (known: {})",
                known.join(", ")
            )));
        };
        match import.ty() {
            ExternType::Func(ty) if sig(&ty, params, results) => imports.push(n.to_owned()),
            ExternType::Func(ty) => {
                return Err(PluginError::Abi(format!(
                    "import `{m}.{n}` has type {}, ABI v1 defines {} -> {}",
                    show_ty(&ty),
                    show(params),
                    show(results)
                )));
            }
            _ => {
                return Err(PluginError::Abi(format!(
                    "import `{m}.{n}` must be a function"
                )));
            }
        }
    }
    Ok(ModuleInfo {
        abi_version: ABI_VERSION,
        hooks,
        imports,
        ignored_exports,
    })
}
