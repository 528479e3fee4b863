//! `tessera plugin new NAME --lang rust|assemblyscript|c [--dir PARENT]`: writes a policy
//! plugin project that builds and passes its own test as generated.
//!
//! The projects are the files under `plugins/templates/<lang>/`, embedded in the binary, with
//! `{{name}}`, `{{crate_name}}` and `{{sdk_patch}}` filled in; the SDK files of AssemblyScript
//! and C are copied as they are. Nothing is written when the name is refused or the project
//! directory exists, and a project that fails half-way is removed.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

/// `tessera plugin new NAME --lang LANG [--dir PARENT] [--sdk-path DIR]`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name, also the project directory's: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`,
    /// `.` (what `[[plugins]] name` takes); for Rust also a crate name.
    pub name: String,
    /// The language of the project.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Where to create the project directory (it must exist).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Rust only: the `plugins/sdk` folder of a Tessera checkout to build the SDK from
    /// (a `[patch.crates-io]` table in Cargo.toml). Default: the checkout this binary was
    /// built from, when it is still there; else the crates.io release.
    #[arg(long)]
    pub sdk_path: Option<PathBuf>,
}

/// A language `tessera plugin new` writes projects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust with the `tessera-plugin-sdk` crate.
    Rust,
    /// AssemblyScript with `tessera.ts`.
    #[value(name = "assemblyscript", alias = "as")]
    AssemblyScript,
    /// C (clang, no libc) with `tessera_plugin.h`.
    C,
}

/// One file of a project: where it goes, its text, whether placeholders are filled in.
struct File {
    path: &'static str,
    text: &'static str,
    template: bool,
}

macro_rules! template {
    ($lang:literal, $from:literal => $to:literal) => {
        File {
            path: $to,
            text: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../plugins/templates/",
                $lang,
                "/",
                $from
            )),
            template: true,
        }
    };
    ($lang:literal, $file:literal) => {
        template!($lang, $file => $file)
    };
}

const RUST: &[File] = &[
    template!("rust", "Cargo.toml.tmpl" => "Cargo.toml"),
    template!("rust", "src/lib.rs"),
    template!("rust", "build.sh"),
    template!("rust", "test.sh"),
    template!("rust", "tests/config.toml"),
    template!("rust", "tests/events.jsonl"),
    template!("rust", "tests/expected.jsonl"),
    template!("rust", "README.md"),
    template!("rust", "gitignore" => ".gitignore"),
];

const ASSEMBLYSCRIPT: &[File] = &[
    template!("assemblyscript", "package.json"),
    template!("assemblyscript", "package-lock.json"),
    template!("assemblyscript", "asconfig.json"),
    template!("assemblyscript", "assembly/index.ts"),
    File {
        path: "assembly/tessera.ts",
        text: include_str!("../../../plugins/sdk-assemblyscript/tessera.ts"),
        template: false,
    },
    template!("assemblyscript", "build.sh"),
    template!("assemblyscript", "test.sh"),
    template!("assemblyscript", "tests/config.toml"),
    template!("assemblyscript", "tests/events.jsonl"),
    template!("assemblyscript", "tests/expected.jsonl"),
    template!("assemblyscript", "README.md"),
    template!("assemblyscript", "gitignore" => ".gitignore"),
];

const C: &[File] = &[
    template!("c", "plugin.c"),
    File {
        path: "tessera_plugin.h",
        text: include_str!("../../../plugins/sdk-c/tessera_plugin.h"),
        template: false,
    },
    template!("c", "build.sh"),
    template!("c", "test.sh"),
    template!("c", "tests/config.toml"),
    template!("c", "tests/events.jsonl"),
    template!("c", "tests/expected.jsonl"),
    template!("c", "README.md"),
    template!("c", "gitignore" => ".gitignore"),
];

/// The SDK of the checkout this binary was built from (`runtime/../plugins/sdk`).
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

/// Runs `tessera plugin new`; the text to print.
///
/// # Errors
/// A refused name, an existing directory, an unusable `--sdk-path`, or a failed write.
pub fn run(a: &NewArgs) -> anyhow::Result<String> {
    check_name(&a.name, a.lang)?;
    if a.sdk_path.is_some() && a.lang != Lang::Rust {
        bail!("--sdk-path is for --lang rust only");
    }
    let sdk = match (a.lang, &a.sdk_path) {
        (Lang::Rust, Some(p)) => Some(sdk_dir(p)?),
        (Lang::Rust, None) => sdk_dir(Path::new(BUILT_FROM_SDK)).ok(),
        _ => None,
    };
    let files = render(a.lang, &a.name, sdk.as_deref())?;
    let dir = a.dir.join(&a.name);
    write_project(&dir, &files)?;

    let mut out = format!(
        "created {} plugin `{}` in {}\n",
        lang_name(a.lang),
        a.name,
        dir.display()
    );
    match (a.lang, &sdk) {
        (Lang::Rust, Some(sdk)) => out.push_str(&format!(
            "tessera-plugin-sdk is built from {} ([patch.crates-io] in Cargo.toml)\n",
            sdk.display()
        )),
        (Lang::Rust, None) => out.push_str(
            "tessera-plugin-sdk comes from crates.io (--sdk-path names a checkout's plugins/sdk)\n",
        ),
        _ => {}
    }
    out.push_str(&format!("next:\n  cd {}\n", dir.display()));
    if a.lang == Lang::Rust {
        out.push_str("  cargo test\n");
    }
    out.push_str("  bash test.sh      # builds, then runs tests/events.jsonl (TESSERA=path/to/tessera if not on PATH)\n");
    out.push_str("README.md says how to load it into the server.");
    Ok(out)
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Rust",
        Lang::AssemblyScript => "AssemblyScript",
        Lang::C => "C",
    }
}

/// The host's rule for plugin names (`valid_name` in plugins/host/src/host.rs), and for Rust
/// a lowercase crate name that is not a keyword or a standard library crate.
fn check_name(name: &str, lang: Lang) -> anyhow::Result<()> {
    let host_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !host_ok {
        bail!("invalid plugin name `{name}`: use 1 to 64 of A-Z, a-z, 0-9, _, -, .");
    }
    if name == "." || name == ".." {
        bail!("invalid plugin name `{name}`: it names a directory, not a new one");
    }
    if lang != Lang::Rust {
        return Ok(());
    }
    let starts_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if !starts_ok || !chars_ok {
        bail!(
            "invalid plugin name `{name}` for Rust: a crate name starts with a-z or _ and has \
             only a-z, 0-9, _ and - (e.g. `{}`)",
            suggest_crate_name(name)
        );
    }
    let crate_name = name.replace('-', "_");
    if RESERVED.contains(&crate_name.as_str()) {
        bail!(
            "invalid plugin name `{name}` for Rust: `{crate_name}` is a Rust keyword or a \
             standard library crate"
        );
    }
    Ok(())
}

/// Rust keywords (2024 edition, reserved ones included) and the standard library's crates.
const RESERVED: &[&str] = &[
    "abstract",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
    "_",
    "alloc",
    "core",
    "proc_macro",
    "std",
    "test",
];

fn suggest_crate_name(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == '.' { '-' } else { c })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
        s
    } else {
        format!(
            "plugin-{}",
            s.trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        )
    }
}

/// `dir` if it is the `tessera-plugin-sdk` crate, made absolute.
fn sdk_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("--sdk-path: cannot read {}", manifest.display()))?;
    let is_sdk = toml::from_str::<toml::Table>(&text).ok().is_some_and(|t| {
        t.get("package")
            .and_then(|p| p.get("name"))
            .and_then(toml::Value::as_str)
            == Some("tessera-plugin-sdk")
    });
    if !is_sdk {
        bail!(
            "--sdk-path: {} is not the tessera-plugin-sdk crate (give a Tessera checkout's plugins/sdk)",
            dir.display()
        );
    }
    std::fs::canonicalize(dir).with_context(|| format!("--sdk-path: {}", dir.display()))
}

/// The `{{sdk_patch}}` of Cargo.toml: a patch to `sdk`, or how to add one.
fn sdk_patch(sdk: Option<&Path>) -> String {
    match sdk {
        Some(sdk) => {
            let path = toml::Value::String(sdk.display().to_string());
            format!(
                "# The SDK from the Tessera checkout this project was made from (tessera-plugin-sdk is\n\
                 # not on crates.io yet); delete this table to use the crates.io release.\n\
                 [patch.crates-io]\n\
                 tessera-plugin-sdk = {{ path = {path} }}\n"
            )
        }
        None => "# To build the SDK from a Tessera checkout instead of crates.io:\n\
                 # [patch.crates-io]\n\
                 # tessera-plugin-sdk = { path = \"../tessera/plugins/sdk\" }\n"
            .to_string(),
    }
}

/// The project's files, placeholders filled in.
fn render(
    lang: Lang,
    name: &str,
    sdk: Option<&Path>,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let files = match lang {
        Lang::Rust => RUST,
        Lang::AssemblyScript => ASSEMBLYSCRIPT,
        Lang::C => C,
    };
    let crate_name = name.replace('-', "_");
    let patch = sdk_patch(sdk);
    files
        .iter()
        .map(|f| {
            if !f.template {
                return Ok((f.path, f.text.to_string()));
            }
            let text = f
                .text
                .replace("{{name}}", name)
                .replace("{{crate_name}}", &crate_name)
                .replace("{{sdk_patch}}", patch.trim_end());
            if text.contains("{{") {
                bail!("template {} has an unknown placeholder", f.path);
            }
            Ok((f.path, text))
        })
        .collect()
}

/// Creates `dir` (refusing an existing one) and writes `files` into it; on a failure removes
/// what it created.
fn write_project(dir: &Path, files: &[(&'static str, String)]) -> anyhow::Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    if !parent.as_os_str().is_empty() && !parent.is_dir() {
        bail!("{} is not a directory", parent.display());
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!(
                "{} already exists; choose another name or --dir",
                dir.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    let written = files.iter().try_for_each(|(path, text)| {
        let to = dir.join(path);
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&to, text)?;
        if path.ends_with(".sh") {
            make_executable(&to)?;
        }
        Ok::<_, std::io::Error>(())
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(dir);
        return Err(e).with_context(|| format!("cannot write the project in {}", dir.display()));
    }
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const ALL: [Lang; 3] = [Lang::Rust, Lang::AssemblyScript, Lang::C];

    fn args(parent: &Path, name: &str, lang: Lang) -> NewArgs {
        NewArgs {
            name: name.into(),
            lang,
            dir: parent.to_path_buf(),
            sdk_path: None,
        }
    }

    #[test]
    fn names_follow_the_hosts_rule() {
        for lang in ALL {
            for ok in ["machine-guard", "guard_2", "g", &"a".repeat(64)] {
                assert!(check_name(ok, lang).is_ok(), "{ok} {lang:?}");
            }
            for bad in [
                "",
                "has space",
                "a/b",
                "../up",
                ".",
                "..",
                "é",
                &"a".repeat(65),
            ] {
                assert!(check_name(bad, lang).is_err(), "{bad:?} {lang:?}");
            }
        }
        for other in [Lang::AssemblyScript, Lang::C] {
            assert!(check_name("Guard.v2", other).is_ok());
            assert!(check_name("2fa", other).is_ok());
        }
    }

    #[test]
    fn rust_names_are_crate_names() {
        for bad in [
            "Guard", "guard.v2", "2fa", "-x", "fn", "self", "test", "std",
        ] {
            let err = check_name(bad, Lang::Rust).unwrap_err().to_string();
            assert!(err.contains("for Rust"), "{bad}: {err}");
        }
        assert!(check_name("_guard", Lang::Rust).is_ok());
        assert!(check_name("my-fn", Lang::Rust).is_ok());
        let err = check_name("Guard.v2", Lang::Rust).unwrap_err().to_string();
        assert!(err.contains("`guard-v2`"), "{err}");
    }

    #[test]
    fn placeholders_are_all_filled_in() {
        for lang in ALL {
            for sdk in [None, Some(Path::new("/x/plugins/sdk"))] {
                let files = render(lang, "my-guard", sdk).unwrap();
                for (path, text) in &files {
                    assert!(!text.contains("{{"), "{lang:?} {path}");
                }
                let all: String = files.iter().map(|(_, t)| t.as_str()).collect();
                assert!(all.contains("build/my-guard.wasm"), "{lang:?}");
            }
        }
        let rust = render(Lang::Rust, "my-guard", Some(Path::new("/x/plugins/sdk"))).unwrap();
        let manifest = &rust.iter().find(|(p, _)| *p == "Cargo.toml").unwrap().1;
        let table: toml::Table = manifest.parse().unwrap();
        assert_eq!(table["package"]["name"].as_str(), Some("my-guard"));
        assert_eq!(
            table["patch"]["crates-io"]["tessera-plugin-sdk"]["path"].as_str(),
            Some("/x/plugins/sdk")
        );
        let build = &rust.iter().find(|(p, _)| *p == "build.sh").unwrap().1;
        assert!(build.contains("release/my_guard.wasm"), "{build}");
        let without: toml::Table = render(Lang::Rust, "my-guard", None).unwrap()[0]
            .1
            .parse()
            .unwrap();
        assert!(without.get("patch").is_none());
    }

    #[test]
    fn a_project_is_written_and_an_existing_directory_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for lang in ALL {
            let name = format!("guard-{}", lang_name(lang).to_lowercase());
            run(&args(tmp.path(), &name, lang)).unwrap();
            let dir = tmp.path().join(&name);
            assert!(dir.join("test.sh").is_file() && dir.join(".gitignore").is_file());
            assert!(dir.join("tests/expected.jsonl").is_file());

            let before = std::fs::read_to_string(dir.join("README.md")).unwrap();
            let err = run(&args(tmp.path(), &name, lang)).unwrap_err().to_string();
            assert!(err.contains("already exists"), "{err}");
            assert_eq!(
                std::fs::read_to_string(dir.join("README.md")).unwrap(),
                before
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(tmp.path().join("guard-c/build.sh"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o111, 0o111);
        }
    }

    #[test]
    fn nothing_is_written_for_a_refused_name_or_a_missing_parent() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(run(&args(tmp.path(), "Bad.Name", Lang::Rust)).is_err());
        assert!(run(&args(tmp.path(), "bad name", Lang::C)).is_err());
        let missing = tmp.path().join("missing");
        assert!(run(&args(&missing, "guard", Lang::C)).is_err());
        let mut a = args(tmp.path(), "guard", Lang::C);
        a.sdk_path = Some(tmp.path().to_path_buf());
        assert!(run(&a).is_err());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn sdk_path_must_be_the_sdk_crate() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = args(tmp.path(), "guard", Lang::Rust);
        a.sdk_path = Some(tmp.path().to_path_buf());
        let err = run(&a).unwrap_err().to_string();
        assert!(err.contains("--sdk-path"), "{err}");
        assert!(!tmp.path().join("guard").exists());
        assert!(sdk_dir(Path::new(BUILT_FROM_SDK)).is_ok());
    }

    /// One policy in three languages: the same test, and the AssemblyScript compiler the
    /// example pins, with the same lock.
    #[test]
    fn the_templates_share_their_test_and_the_examples_compiler() {
        let tests = |lang| {
            render(lang, "x", None)
                .unwrap()
                .into_iter()
                .filter(|(p, _)| p.starts_with("tests/"))
                .collect::<Vec<_>>()
        };
        assert_eq!(tests(Lang::Rust), tests(Lang::AssemblyScript));
        assert_eq!(tests(Lang::Rust), tests(Lang::C));

        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../plugins/examples/activation-guard-as/package-lock.json"
        );
        let example: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
        let files = render(Lang::AssemblyScript, "x", None).unwrap();
        let lock: serde_json::Value = serde_json::from_str(
            &files
                .iter()
                .find(|(p, _)| *p == "package-lock.json")
                .unwrap()
                .1,
        )
        .unwrap();
        let deps = |v: &serde_json::Value| {
            let mut p = v["packages"].as_object().unwrap().clone();
            let root = p.remove("").unwrap();
            (p, root["devDependencies"].clone())
        };
        assert_eq!(deps(&lock), deps(&example));
        let package: serde_json::Value =
            serde_json::from_str(&files.iter().find(|(p, _)| *p == "package.json").unwrap().1)
                .unwrap();
        assert_eq!(package["devDependencies"], deps(&example).1);
    }
}
