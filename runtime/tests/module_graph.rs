//! The shape of `runtime/src`, checked: no import loop between its modules, every file in a
//! folder that names its capability, and a code map in `docs/architecture.md` that names
//! every crate and every top-level folder. A loop or an unmapped folder fails here, in CI.
//!
//! The graph is read from the source: a module (file) depends on another when it names it in
//! a `use` tree or a path (`crate::a::b`, `super::x`, `self::y`, or a child module's name).
//! `#[cfg(test)] mod tests` blocks and comments are left out; `mod x;` declarations are
//! ownership, not use. `lib.rs` and `main.rs` are the crate roots and not part of the graph.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files that may sit directly in `runtime/src`; everything else lives in a capability folder.
const TOP_LEVEL_FILES: &[&str] = &[
    "lib.rs",
    "main.rs",
    "state.rs",
    "control.rs",
    "reload.rs",
    "telemetry.rs",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a/b.rs` → `[a, b]`, `a/mod.rs` → `[a]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    if last != "mod.rs" {
        parts.push(last.trim_end_matches(".rs").to_string());
    }
    parts
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Path, // ::
    Open,
    Close,
    Comma,
    Semi,
    Other,
}

/// Identifiers and punctuation, without comments, strings and char literals.
fn tokens(text: &str) -> Vec<Tok> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == b'r' && (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"')) {
            // Raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(Tok::Ident("r".into()));
                i += 1;
                continue;
            }
            j += 1;
            let end: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&end) {
                j += 1;
            }
            i = j + end.len();
        } else if c == b'\'' {
            // A char literal ('x', '\n') or a lifetime ('a): skip both.
            if b.get(i + 2) == Some(&b'\'') {
                i += 3;
            } else if b.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            } else {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(text[start..i].to_string()));
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            out.push(Tok::Path);
            i += 2;
        } else {
            out.push(match c {
                b'{' => Tok::Open,
                b'}' => Tok::Close,
                b',' => Tok::Comma,
                b';' => Tok::Semi,
                _ => Tok::Other,
            });
            i += 1;
        }
    }
    out
}

/// Drops `#[cfg(test)] mod NAME { ... }` blocks: test code may look back at its parent.
fn without_test_modules(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let is_cfg_test = matches!(&toks[i], Tok::Ident(s) if s == "cfg")
            && matches!(toks.get(i + 2), Some(Tok::Ident(s)) if s == "test");
        if is_cfg_test {
            // Skip to the item: `mod name {` → skip its block; `mod name;` → skip the line.
            let mut j = i + 3;
            while j < toks.len() && !matches!(&toks[j], Tok::Ident(s) if s == "mod") {
                if matches!(toks[j], Tok::Semi | Tok::Open) {
                    break;
                }
                j += 1;
            }
            if matches!(toks.get(j), Some(Tok::Ident(s)) if s == "mod") {
                let mut k = j + 2;
                if toks.get(k) == Some(&Tok::Open) {
                    let mut depth = 0;
                    while k < toks.len() {
                        match toks[k] {
                            Tok::Open => depth += 1,
                            Tok::Close => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        k += 1;
                    }
                }
                i = k + 1;
                continue;
            }
        }
        out.push(toks[i].clone());
        i += 1;
    }
    out
}

/// Expands a `use` tree starting at `toks[i]` into full paths; returns the index after it.
fn use_tree(toks: &[Tok], mut i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(i) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                i += 1;
                if toks.get(i) == Some(&Tok::Path) {
                    i += 1;
                    continue;
                }
                // `as alias` or the end of this branch.
                if matches!(toks.get(i), Some(Tok::Ident(s)) if s == "as") {
                    i += 2;
                }
                out.push(path);
                return i;
            }
            Some(Tok::Open) => {
                i += 1;
                while i < toks.len() && toks[i] != Tok::Close {
                    i = use_tree(toks, i, &path, out);
                    if toks.get(i) == Some(&Tok::Comma) {
                        i += 1;
                    }
                }
                return i + 1;
            }
            Some(Tok::Other) => {
                // `*`
                out.push(path);
                return i + 1;
            }
            _ => return i,
        }
    }
}

/// Every path a file names that could lead to another module of this crate.
fn named_paths(toks: &[Tok], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let starts_path = i == 0 || toks[i - 1] != Tok::Path;
        match &toks[i] {
            Tok::Ident(s) if s == "use" => {
                i = use_tree(toks, i + 1, &[], &mut out);
                continue;
            }
            Tok::Ident(s)
                if starts_path
                    && toks.get(i + 1) == Some(&Tok::Path)
                    && (s == "crate" || s == "super" || s == "self" || children.contains(s)) =>
            {
                let mut path = vec![s.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::Path) {
                    match toks.get(j + 1) {
                        Some(Tok::Ident(n)) => path.push(n.clone()),
                        _ => break,
                    }
                    j += 2;
                }
                out.push(path);
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The module a path leads to, or `None` for another crate or the crate root.
fn resolve(
    from: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut base: Vec<String> = from.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        Some(first) => {
            let mut child = base.clone();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
        }
        None => return None,
    }
    let mut best = None;
    let mut cur = base.clone();
    for seg in rest {
        cur.push(seg.clone());
        if modules.contains(&cur) {
            best = Some(cur.clone());
        }
    }
    best.or_else(|| (!base.is_empty() && modules.contains(&base)).then_some(base))
}

fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .map(|f| module_of(f))
        .filter(|m| !m.is_empty() && m != &["main".to_string()])
        .collect();
    let mut edges = BTreeMap::new();
    for file in &files {
        let me = module_of(file);
        if !modules.contains(&me) {
            continue;
        }
        let children: BTreeSet<String> = modules
            .iter()
            .filter(|m| m.len() == me.len() + 1 && m.starts_with(&me))
            .map(|m| m[me.len()].clone())
            .collect();
        let text = std::fs::read_to_string(file).unwrap();
        let toks = without_test_modules(tokens(&text));
        let deps: BTreeSet<Vec<String>> = named_paths(&toks, &children)
            .iter()
            .filter_map(|p| resolve(&me, p, &modules))
            .filter(|t| t != &me)
            .collect();
        edges.insert(me, deps);
    }
    edges
}

fn find_cycle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        n: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let at = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut cycle: Vec<String> = stack[at..].iter().map(|m| m.join("::")).collect();
                cycle.push(n.join("::"));
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(n.clone(), Mark::Open);
        stack.push(n.clone());
        for next in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, edges, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in edges.keys() {
        let mut stack = Vec::new();
        if let Some(c) = visit(n, edges, &mut marks, &mut stack) {
            return Some(c);
        }
    }
    None
}

#[test]
fn runtime_modules_import_each_other_without_a_loop() {
    let edges = graph();
    assert!(edges.len() > 40, "found only {} modules", edges.len());
    // The graph must see real edges, or an acyclic verdict means nothing.
    let to = |from: &str, to: &str| {
        let f: Vec<String> = from.split("::").map(String::from).collect();
        let t: Vec<String> = to.split("::").map(String::from).collect();
        edges.get(&f).is_some_and(|d| d.contains(&t))
    };
    assert!(to("api::admin", "admin"), "api::admin should use admin");
    assert!(
        to("http::server", "control"),
        "http::server should use control"
    );
    assert!(to("cli", "cli::license"), "cli should call cli::license");
    if let Some(cycle) = find_cycle(&edges) {
        panic!("import loop in runtime/src: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checker_finds_a_loop_when_there_is_one() {
    let m = |s: &str| -> Vec<String> { s.split("::").map(String::from).collect() };
    let mut edges = BTreeMap::new();
    edges.insert(m("a"), BTreeSet::from([m("b")]));
    edges.insert(m("b"), BTreeSet::from([m("c")]));
    edges.insert(m("c"), BTreeSet::from([m("a")]));
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let toks = tokens("use crate::{a::b, c::{d, e as f}};\nfn x() { super::g::h(); i::j(); }");
    let paths = named_paths(&toks, &BTreeSet::from(["i".to_string()]));
    let shown: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        shown,
        [
            "crate::a::b",
            "crate::c::d",
            "crate::c::e",
            "super::g::h",
            "i::j"
        ]
    );
}

#[test]
fn every_file_sits_in_a_folder_that_names_its_capability() {
    let mut loose = Vec::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && !TOP_LEVEL_FILES.contains(&name.as_str()) {
            loose.push(name);
        }
    }
    assert!(
        loose.is_empty(),
        "files directly in runtime/src that belong in a capability folder: {loose:?}"
    );
}

#[test]
fn the_code_map_names_every_crate_and_every_runtime_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let map = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members: Vec<&str> = manifest
        .split("members = [")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap()
        .split(',')
        .map(|s| s.trim().trim_matches('"'))
        .filter(|s| !s.is_empty())
        .collect();
    assert!(members.len() >= 5, "{members:?}");
    let mut missing = Vec::new();
    for member in &members {
        let crate_name = std::fs::read_to_string(root.join(member).join("Cargo.toml"))
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("name = ")
                    .map(|n| n.trim_matches('"').to_string())
            })
            .unwrap();
        if !map.contains(&format!("`{member}/`")) || !map.contains(&format!("`{crate_name}`")) {
            missing.push(format!("{member} ({crate_name})"));
        }
    }
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let shown = if path.is_dir() {
            format!("`{name}/`")
        } else {
            format!("`{name}`")
        };
        if name != "main.rs" && name != "lib.rs" && !map.contains(&shown) {
            missing.push(format!("runtime/src/{name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md's code map does not mention: {missing:?}"
    );
    assert!(
        !map.contains("../shared/"),
        "docs/architecture.md points outside the repository"
    );
}
