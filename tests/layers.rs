//! The layer rule of `docs/architecture.md`, checked on the source: which top-level module of
//! `src/` may name which. Every `crate::…` path counts (in `use` lines, grouped
//! `use crate::{a, b}` and paths in code), and so does a `super::…` path that climbs to the
//! crate root; comments and string literals do not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The module that wires the server together, the HTTP layer and its state, and the CLI.
const UPPER: &[&str] = &["app", "commands", "http", "state"];

/// What a module may not import, and why.
struct Rule {
    from: &'static [&'static str],
    not: &'static [&'static str],
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        from: &["audio"],
        not: &["db", "providers"],
        why: "audio works on samples and bytes only",
    },
    Rule {
        from: &["providers"],
        not: &["db", "http"],
        why: "providers speak to engines and services, never to the database or HTTP",
    },
    Rule {
        from: &["http"],
        not: &["app", "commands"],
        why: "HTTP is wired into the server, it does not wire it",
    },
    Rule {
        from: &["state"],
        not: &["app", "commands", "http"],
        why: "the application state holds no HTTP types",
    },
    Rule {
        from: &["app"],
        not: &["commands"],
        why: "nothing imports the command line",
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    /// The importing file, relative to `src/`.
    file: String,
    line: usize,
    from: String,
    to: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Dot,
    Paren,
    Other,
}

/// Identifiers and the punctuation paths are made of, with comments, strings and char
/// literals left out; each with its line.
fn tokens(source: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if let Some(prefix) = raw_string_prefix(&chars[i..]) {
            // A raw string: r"…", r#"…"#, br"…", …
            let mut hashes = 0;
            i += prefix;
            while at(i) == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                    i += 1 + hashes;
                    break;
                }
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                line += usize::from(at(i) == '\n');
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}'), or a lifetime ('a), which is skipped.
            if at(i + 1) == '\\' {
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            out.push((Tok::Ident(chars[start..i].iter().collect()), line));
        } else if c == ':' && at(i + 1) == ':' {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((
                match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    '.' => Tok::Dot,
                    '(' => Tok::Paren,
                    _ => Tok::Other,
                },
                line,
            ));
            i += 1;
        }
    }
    out
}

/// The length of `r` or `br` when `chars` starts a raw string (`r"`, `r#"`, `br##"` …).
fn raw_string_prefix(chars: &[char]) -> Option<usize> {
    let prefix = match chars {
        ['r', ..] => 1,
        ['b', 'r', ..] => 2,
        _ => return None,
    };
    let rest = &chars[prefix..];
    let hashes = rest.iter().take_while(|c| **c == '#').count();
    (rest.get(hashes) == Some(&'"')).then_some(prefix)
}

/// The names a path names at the crate root, starting at `toks[i]` (just after `crate::`):
/// `x` of `x::…`, or the first name of each item of `{a, b::c, d::{e}}`.
fn root_names(toks: &[(Tok, usize)], i: usize) -> Vec<(String, usize)> {
    match toks.get(i) {
        Some((Tok::Ident(name), line)) => vec![(name.clone(), *line)],
        Some((Tok::Open, _)) => {
            let mut names = Vec::new();
            let (mut depth, mut first) = (0, true);
            for (tok, line) in &toks[i..] {
                match tok {
                    Tok::Open => {
                        depth += 1;
                        continue;
                    }
                    Tok::Close => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Tok::Comma if depth == 1 => {
                        first = true;
                        continue;
                    }
                    Tok::Ident(name) if depth == 1 && first => names.push((name.clone(), *line)),
                    _ => {}
                }
                first = false;
            }
            names
        }
        _ => Vec::new(),
    }
}

/// How deep a file sits in the module tree: `x.rs` and `x/mod.rs` are 1, `x/y.rs` is 2.
fn file_depth(file: &str) -> usize {
    let parts: Vec<&str> = file.split('/').collect();
    if parts.last() == Some(&"mod.rs") {
        parts.len() - 1
    } else {
        parts.len()
    }
}

/// The top-level modules one file (relative to `src/`) names, each with its line.
fn imports_of(file: &str, source: &str, modules: &BTreeSet<String>) -> Vec<Import> {
    let from = file
        .split('/')
        .next()
        .unwrap_or(file)
        .trim_end_matches(".rs")
        .to_string();
    let toks = tokens(source);
    let mut found = Vec::new();
    // Brace depths at which inline `mod x { … }` blocks opened: each is one level deeper.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut braces = 0;
    let mut i = 0;
    while i < toks.len() {
        let prev_is_sep = i > 0 && toks[i - 1].0 == Tok::PathSep;
        match &toks[i].0 {
            Tok::Open => {
                braces += 1;
                if i >= 2
                    && toks[i - 2].0 == Tok::Ident("mod".into())
                    && matches!(toks[i - 1].0, Tok::Ident(_))
                {
                    inline_mods.push(braces);
                }
            }
            Tok::Close => {
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
                braces -= 1;
            }
            Tok::Ident(word)
                if word == "crate"
                    && !prev_is_sep
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep) =>
            {
                found.extend(root_names(&toks, i + 2));
            }
            Tok::Ident(word) if word == "super" && !prev_is_sep => {
                let mut j = i;
                let mut climbs = 0;
                while toks.get(j).map(|t| &t.0) == Some(&Tok::Ident("super".into()))
                    && toks.get(j + 1).map(|t| &t.0) == Some(&Tok::PathSep)
                {
                    climbs += 1;
                    j += 2;
                }
                if climbs >= file_depth(file) + inline_mods.len() {
                    for (name, line) in root_names(&toks, j) {
                        found.push((name, line));
                    }
                }
                i = j.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
        .into_iter()
        .filter(|(name, _)| name != &from && modules.contains(name))
        .map(|(to, line)| Import {
            file: file.to_string(),
            line,
            from: from.clone(),
            to,
        })
        .collect()
}

/// Every breach of the rules, as sentences naming the file, the line and the import.
fn violations(imports: &[Import]) -> Vec<String> {
    let mut out = Vec::new();
    for import in imports {
        let Import {
            file,
            line,
            from,
            to,
        } = import;
        let breach =
            |why: &str| format!("src/{file}:{line}: `{from}` imports `crate::{to}`: {why}");
        if to == "commands" || to == "main" {
            out.push(breach("nothing imports the command line"));
            continue;
        }
        if !UPPER.contains(&from.as_str()) && UPPER.contains(&to.as_str()) {
            out.push(breach(
                "only the wiring (`app`), HTTP and the command line import the wiring, HTTP or \
                 the application state; services, jobs, storage and the database take what they \
                 need as arguments",
            ));
            continue;
        }
        for rule in RULES {
            if rule.from.contains(&from.as_str()) && rule.not.contains(&to.as_str()) {
                out.push(breach(rule.why));
            }
        }
    }
    out
}

/// A cycle between top-level modules, if there is one: each step with an import that makes it.
fn cycle(imports: &[Import]) -> Option<Vec<Import>> {
    let mut edges: BTreeMap<&str, BTreeMap<&str, &Import>> = BTreeMap::new();
    for import in imports {
        edges
            .entry(import.from.as_str())
            .or_default()
            .entry(import.to.as_str())
            .or_insert(import);
    }
    // Depth-first search with the path kept: a node met again on the path closes a cycle.
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, BTreeMap<&'a str, &'a Import>>,
        path: &mut Vec<&'a Import>,
        on_path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<Import>> {
        if let Some(start) = on_path.iter().position(|n| *n == node) {
            return Some(path[start..].iter().map(|i| (*i).clone()).collect());
        }
        if !done.insert(node) {
            return None;
        }
        on_path.push(node);
        for (next, import) in edges.get(node).into_iter().flatten() {
            path.push(import);
            if let Some(found) = visit(next, edges, path, on_path, done) {
                return Some(found);
            }
            path.pop();
        }
        on_path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(found) = visit(node, &edges, &mut Vec::new(), &mut Vec::new(), &mut done) {
            return Some(found);
        }
    }
    None
}

/// Checks a source tree given as (path relative to `src/`, text) pairs.
fn check(files: &[(String, String)]) -> Vec<String> {
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(path, _)| {
            path.split('/')
                .next()
                .unwrap_or(path)
                .trim_end_matches(".rs")
                .to_string()
        })
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let imports: Vec<Import> = files
        .iter()
        .filter(|(path, _)| path != "lib.rs" && path != "main.rs")
        .flat_map(|(path, text)| imports_of(path, text, &modules))
        .collect();
    let mut out = violations(&imports);
    if let Some(steps) = cycle(&imports) {
        let names: Vec<&str> = steps
            .iter()
            .map(|s| s.from.as_str())
            .chain(steps.first().map(|s| s.from.as_str()))
            .collect();
        let mut message = format!("the top-level modules form a cycle: {}", names.join(" → "));
        for s in &steps {
            message.push_str(&format!(
                "\n    src/{}:{}: `{}` imports `crate::{}`",
                s.file, s.line, s.from, s.to
            ));
        }
        out.push(message);
    }
    out
}

/// The database handle's raw access: closures over a SQLite connection.
const RAW_ACCESS: &[&str] = &[
    "read",
    "lookup",
    "write",
    "transaction",
    "try_transaction",
    "write_blocking",
];

/// Directories that may reach SQLite itself: the database layer, and backups, which work on
/// the database file as a file (`VACUUM INTO`, the online backup API, checkpoints).
const RAW_ALLOWED: &[&str] = &["db", "backup"];

/// Every place outside the database layer that reaches SQLite itself: names `rusqlite`, or
/// calls the handle's raw access (`db.read(…)`, `self.db().write(…)`, …) instead of a table
/// handle's typed methods.
fn raw_database_access(files: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (file, text) in files {
        let top = file
            .split('/')
            .next()
            .unwrap_or(file)
            .trim_end_matches(".rs");
        if RAW_ALLOWED.contains(&top) {
            continue;
        }
        let toks = tokens(text);
        let ident = |i: usize| match toks.get(i) {
            Some((Tok::Ident(name), _)) => Some(name.as_str()),
            _ => None,
        };
        let is = |i: usize, tok: Tok| toks.get(i).map(|t| &t.0) == Some(&tok);
        for (i, (tok, line)) in toks.iter().enumerate() {
            let Tok::Ident(name) = tok else { continue };
            if name == "rusqlite" {
                out.push(format!("src/{file}:{line}: names `rusqlite`"));
                continue;
            }
            if name != "db" {
                continue;
            }
            // `db.m(` or `db().m(`
            let method_at = if is(i + 1, Tok::Dot) {
                i + 2
            } else if is(i + 1, Tok::Paren) && is(i + 2, Tok::Other) && is(i + 3, Tok::Dot) {
                i + 4
            } else {
                continue;
            };
            if let Some(method) = ident(method_at)
                && RAW_ACCESS.contains(&method)
                && is(method_at + 1, Tok::Paren)
            {
                out.push(format!(
                    "src/{file}:{line}: calls `db.{method}(…)`: use a table handle's method \
                     (`db.audios().get(…)`), so a second backend changes only `db/`"
                ));
            }
        }
    }
    out
}

fn read_tree(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src/");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            out.push((rel.to_string_lossy().replace('\\', "/"), text));
        }
    }
}

#[test]
fn every_module_keeps_to_its_layer_and_no_modules_import_each_other_in_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&src, &src, &mut files);
    assert!(
        files.len() > 50,
        "the source tree was not found under {}",
        src.display()
    );
    let breaches = check(&files);
    assert!(
        breaches.is_empty(),
        "the layer rule of docs/architecture.md is broken:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn nothing_outside_the_database_layer_reaches_sqlite_itself() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&src, &src, &mut files);
    let found = raw_database_access(&files);
    assert!(
        found.is_empty(),
        "the database boundary of docs/architecture.md is broken:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_boundary_check_finds_raw_access_and_lets_handles_and_the_database_layer_be() {
    let found = raw_database_access(&tree(&[
        (
            "speech/service.rs",
            "async fn f(s: &S) {\n\
             s.db.read(move |c| Ok(x(c)?)).await;\n\
             s.db().write(|c| Ok(())).await;\n\
             s.db.audios().get(user, id).await;\n\
             // s.db.write(|c| …)\n\
             let t = \"db.lookup(\";\n\
             }\n",
        ),
        ("auth/users.rs", "\nuse rusqlite::Connection;\n"),
        ("db/audios.rs", "fn g(db: &Db) { db.read(|c| Ok(())); }\n"),
        (
            "backup/online.rs",
            "fn h(db: &Db) { db.write_blocking(|w| ()); }\n",
        ),
        (
            "http/files.rs",
            "fn k(f: &mut File) { f.write(&[]); f.read(&mut b); }\n",
        ),
    ]));
    assert_eq!(
        found.len(),
        3,
        "exactly the raw read, the raw write and the import: {found:#?}"
    );
    assert!(
        found[0].starts_with("src/speech/service.rs:2: calls `db.read(…)`"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("src/speech/service.rs:3: calls `db.write(…)`"),
        "{found:#?}"
    );
    assert!(
        found[2].starts_with("src/auth/users.rs:2: names `rusqlite`"),
        "{found:#?}"
    );
}

fn tree(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn the_checker_finds_a_forbidden_import_in_a_group_a_path_and_a_climb_to_the_root() {
    let breaches = check(&tree(&[
        ("audio/mod.rs", "use crate::{error::AppError, db::Db};\n"),
        (
            "audio/mix.rs",
            "fn f() { super::super::providers::Tts::x(); }\n",
        ),
        ("db/mod.rs", "pub struct Db;\n"),
        ("error.rs", "pub struct AppError;\n"),
        (
            "providers/mod.rs",
            "fn g() -> crate::http::X { crate::http::X }\n",
        ),
        ("http/mod.rs", "pub struct X;\n"),
        ("jobs/mod.rs", "use crate::app::App;\n"),
        ("app.rs", "use crate::commands;\n"),
        ("commands.rs", "use crate::app::App;\n"),
    ]));
    let expect = [
        "src/audio/mod.rs:1: `audio` imports `crate::db`",
        "src/audio/mix.rs:1: `audio` imports `crate::providers`",
        "src/providers/mod.rs:1: `providers` imports `crate::http`",
        "src/jobs/mod.rs:1: `jobs` imports `crate::app`",
        "src/app.rs:1: `app` imports `crate::commands`",
    ];
    for e in expect {
        assert!(
            breaches.iter().any(|b| b.starts_with(e)),
            "expected a breach `{e}` in {breaches:#?}"
        );
    }
    assert!(
        !breaches.iter().any(|b| b.contains("crate::error")),
        "audio may import error: {breaches:#?}"
    );
    // app → commands → app
    assert!(
        breaches
            .iter()
            .any(|b| b.contains("cycle: app → commands → app")
                || b.contains("cycle: commands → app → commands")),
        "{breaches:#?}"
    );
}

#[test]
fn the_checker_reports_a_cycle_with_the_imports_that_make_it() {
    let breaches = check(&tree(&[
        ("config.rs", "use crate::backup::target::TargetSpec;\n"),
        ("backup/mod.rs", "\nuse crate::ops::Clock;\n"),
        ("ops/mod.rs", "use crate::config::Config;\n"),
    ]));
    assert_eq!(breaches.len(), 1, "{breaches:#?}");
    let message = &breaches[0];
    assert!(
        message.starts_with("the top-level modules form a cycle: backup → ops → config → backup"),
        "{message}"
    );
    assert!(
        message.contains("src/backup/mod.rs:2: `backup` imports `crate::ops`"),
        "{message}"
    );
    assert!(
        message.contains("src/config.rs:1: `config` imports `crate::backup`"),
        "{message}"
    );
}

#[test]
fn the_checker_ignores_comments_strings_and_paths_inside_a_module() {
    let breaches = check(&tree(&[
        (
            "audio/mod.rs",
            "//! See [`crate::db::Db`].\n\
             /* crate::providers */\n\
             const S: &str = \"crate::db\";\n\
             const R: &str = r#\"crate::\"db\"#;\n\
             fn f<'a>(x: &'a str) -> char { let _ = '\"'; 'x' }\n\
             mod tests { use super::*; fn t() { super::super::error::E; } }\n\
             use self::inner::crate_like;\n",
        ),
        ("db/mod.rs", ""),
        ("providers/mod.rs", ""),
        ("error.rs", "use super::db::Db;\n"),
    ]));
    assert!(breaches.is_empty(), "{breaches:#?}");
}
