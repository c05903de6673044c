//! Tidy tests, in rust-analyzer's manner: checks of the source tree itself that run with
//! `cargo test` (this crate is a workspace member) and fail with the place to fix.
//!
//! - Within every crate, top-level modules form one-way layers: no import cycle between
//!   them (`use crate::x`, `crate::x::`, `use crate::{x, ...}`).
//! - No source file in `crates/` or `src/` is over 800 lines.
//! - No function is over 125 lines unless a comment right above it starts with
//!   `tidy: long function` and says why.
//!
//! The checks read text, not syntax trees: a heuristic that holds for this code base's
//! formatting (rustfmt), like rust-analyzer's own tidy tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 125;
const LONG_FN_MARKER: &str = "tidy: long function";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_owned()
}

/// The `src` directories of every crate: the CLI's, each library's, xtask's.
fn crate_sources(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("src"), root.join("xtask/src")];
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("list crates/")
        .map(|e| e.expect("read crates/").path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    crates.sort();
    dirs.extend(crates);
    dirs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("read dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Text without its `#[cfg(test)] mod tests { ... }` tail: tests may import anything.
fn without_test_module(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// The top-level modules of the crate that `text` names through `crate::`.
fn crate_imports(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first segment of each top-level item.
            let mut depth = 0usize;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.insert(ident(item.trim()));
        } else {
            found.insert(ident(after));
        }
        rest = after;
    }
    found.retain(|m| !m.is_empty());
    found
}

/// The import graph between the top-level modules of the crate in `src`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("file under src");
        let top = rel
            .components()
            .next()
            .expect("a path")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        graph
            .entry(top)
            .or_default()
            .extend(crate_imports(without_test_module(&text)));
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (module, deps) in &mut graph {
        deps.retain(|d| d != module && modules.contains(d));
    }
    graph
}

/// The strongly connected components of more than one module: each is an import cycle.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Two modules are in one cycle when each reaches the other; graphs here have tens of
    // nodes, so reachability by search from every node is plenty.
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            for d in graph.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut placed = BTreeSet::new();
    for m in graph.keys() {
        if placed.contains(m) {
            continue;
        }
        let component: Vec<String> = graph
            .keys()
            .filter(|o| *o == m || (reaches[m].contains(*o) && reaches[*o].contains(m)))
            .cloned()
            .collect();
        placed.extend(component.iter().cloned());
        if component.len() > 1 {
            out.push(component);
        }
    }
    out
}

/// Functions longer than `MAX_FN_LINES` without the marker comment: (line, name, length).
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let Some(name) = fn_name(trimmed) else {
            continue;
        };
        if trimmed.ends_with(';') {
            continue;
        }
        let closing = format!("{}}}", " ".repeat(indent));
        let Some(end) = lines[i + 1..].iter().position(|l| *l == closing) else {
            continue;
        };
        let len = end + 2;
        if len <= MAX_FN_LINES {
            continue;
        }
        let marked = lines[..i]
            .iter()
            .rev()
            .take_while(|l| {
                let t = l.trim_start();
                t.starts_with("//") || t.starts_with("#[")
            })
            .any(|l| {
                l.trim_start()
                    .trim_start_matches('/')
                    .trim()
                    .starts_with(LONG_FN_MARKER)
            });
        if !marked {
            out.push((i + 1, name, len));
        }
    }
    out
}

/// The name of the function `line` (trimmed) starts, if it starts one.
fn fn_name(line: &str) -> Option<String> {
    let mut rest = line;
    if let Some(r) = rest.strip_prefix("pub") {
        rest = r;
        if rest.starts_with('(') {
            rest = &rest[rest.find(')')? + 1..];
        }
        rest = rest.trim_start();
    }
    for qualifier in ["const ", "async ", "unsafe "] {
        if let Some(r) = rest.strip_prefix(qualifier) {
            rest = r;
        }
    }
    let name: String = rest
        .strip_prefix("fn ")?
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

#[test]
fn modules_form_one_way_layers_in_every_crate() {
    let root = workspace_root();
    let mut found = Vec::new();
    for src in crate_sources(&root) {
        for cycle in cycles(&module_graph(&src)) {
            found.push(format!(
                "{}: {}",
                src.strip_prefix(&root).unwrap_or(&src).display(),
                cycle.join(" <-> ")
            ));
        }
    }
    assert!(
        found.is_empty(),
        "module import cycles (a lower module imports a higher one):\n{}",
        found.join("\n")
    );
}

/// Every source file of every crate, with its text.
fn all_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for src in crate_sources(&workspace_root()) {
        rust_files(&src, &mut files);
    }
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read source");
            (f, text)
        })
        .collect()
}

#[test]
fn source_files_stay_short() {
    let long: Vec<String> = all_sources()
        .into_iter()
        .map(|(file, text)| (file, text.lines().count()))
        .filter(|(_, n)| *n > MAX_FILE_LINES)
        .map(|(file, n)| format!("{}: {n} lines", file.display()))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines; split them by responsibility:\n{}",
        long.join("\n")
    );
}

#[test]
fn functions_stay_short_or_say_why() {
    let mut long = Vec::new();
    for (file, text) in all_sources() {
        for (line, name, len) in long_functions(&text) {
            long.push(format!(
                "{}:{line}: fn {name} is {len} lines",
                file.display()
            ));
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines; split them, or say why above them with a \
         comment starting `{LONG_FN_MARKER}`:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checks_find_what_they_look_for() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        (
            "store",
            crate_imports("use crate::writer::Writer;\nuse crate::{state, Error};"),
        ),
        (
            "writer",
            crate_imports("fn f() { crate::store::recover(); }"),
        ),
        ("state", crate_imports("use crate::{Error, Result};")),
    ]
    .into_iter()
    .map(|(m, deps)| (m.to_owned(), deps))
    .collect();
    let graph: BTreeMap<String, BTreeSet<String>> = graph
        .into_iter()
        .map(|(m, deps)| {
            let deps = deps
                .into_iter()
                .filter(|d| ["store", "writer", "state"].contains(&d.as_str()))
                .collect();
            (m, deps)
        })
        .collect();
    assert_eq!(
        cycles(&graph),
        vec![vec!["store".to_owned(), "writer".to_owned()]]
    );

    let body = "    x();\n".repeat(MAX_FN_LINES);
    let long = format!("fn long() {{\n{body}}}\n");
    assert_eq!(
        long_functions(&long),
        vec![(1, "long".to_owned(), MAX_FN_LINES + 2)]
    );
    let marked = format!("// {LONG_FN_MARKER}: one state machine\n{long}");
    assert!(long_functions(&marked).is_empty());
    assert_eq!(
        fn_name("pub(crate) async fn run(x: u8) {"),
        Some("run".to_owned())
    );
    assert_eq!(
        without_test_module("a\n#[cfg(test)]\nmod tests {\nuse crate::x;"),
        "a\n"
    );
}
