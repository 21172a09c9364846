//! Tests of the workspace's shape: no import loop between the files of a crate, and the
//! crates' layering (the API crates never compile the stages).
//!
//! A module graph is read from the sources: an edge `a → b` when `a` names
//! `crate::b…` (or `super::b…`) outside comments and tests. Loops between files make a
//! crate a single knot a newcomer must read at once; the layering keeps the API from
//! compiling the stream engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every workspace crate's `src` folder, by crate folder.
const CRATES: [&str; 8] = [
    "schemas", "lake", "kafka", "ingest", "stream", "opendata", "graphql", ".",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Module path of a source file (`events/beacon.rs` → `events::beacon`; `lib.rs` → ``).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|c| c != "mod")
        .collect();
    match parts.as_slice() {
        [only] if only == "lib" || only == "main" => String::new(),
        _ => parts.join("::"),
    }
}

/// The code of a file without comments and without its `mod tests` block.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The longest known module that is a prefix of `path`.
fn resolve(modules: &BTreeSet<String>, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// Paths named after `prefix` (`crate::`, `super::`), including those inside `{…}` groups.
fn named_after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        let head: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let head = head.trim_end_matches(':').to_string();
        if rest[head.len()..].trim_start_matches(':').starts_with('{') {
            let group = rest[head.len()..].trim_start_matches(':');
            let end = group.find('}').unwrap_or(group.len());
            for item in group[1..end].split(',') {
                let item = item.trim().split("::").collect::<Vec<_>>().join("::");
                out.push(format!("{head}::{item}"));
            }
        }
        out.push(head);
    }
    out
}

/// The file-level import graph of the crate whose sources are in `src`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let texts: BTreeMap<String, String> = files
        .iter()
        .map(|f| {
            (
                module_of(src, f),
                code(&std::fs::read_to_string(f).unwrap()),
            )
        })
        .collect();
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (module, text) in &texts {
        let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
        let mut edges = BTreeSet::new();
        for path in named_after(text, "crate::") {
            edges.extend(resolve(&modules, &path));
        }
        for path in named_after(text, "super::") {
            let full = if parent.is_empty() {
                path
            } else {
                format!("{parent}::{path}")
            };
            edges.extend(resolve(&modules, &full));
        }
        edges.retain(|e| e != module && !e.is_empty());
        graph.insert(module.clone(), edges);
    }
    graph
}

/// A cycle of the graph, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            return Some(path[i..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_loop_between_its_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in CRATES {
        let g = graph(&root.join(krate).join("src"));
        assert!(g.len() > 1, "{krate}: sources found");
        if let Some(c) = cycle(&g) {
            panic!("{krate}: import loop {}", c.join(" → "));
        }
    }
}

#[test]
fn the_loop_detector_finds_a_loop() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycle(&g).map(|c| c.len()), Some(3));
    let groups = named_after("use crate::{contract::Table, events::x};", "crate::");
    assert!(
        groups.contains(&"::contract::Table".to_string()),
        "{groups:?}"
    );
}

#[test]
fn the_api_crates_do_not_compile_the_stages() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (krate, forbidden) in [
        ("graphql", ["vallee-stream", "vallee-ingest"]),
        ("opendata", ["vallee-stream", "vallee-ingest"]),
        ("lake", ["vallee-stream", "vallee-ingest"]),
        ("schemas", ["vallee-lake", "vallee-kafka"]),
    ] {
        let manifest = std::fs::read_to_string(root.join(krate).join("Cargo.toml")).unwrap();
        for name in forbidden {
            assert!(
                !manifest.contains(&format!("{name}.workspace")),
                "{krate} depends on {name}"
            );
        }
    }
}
