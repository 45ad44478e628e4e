//! The house's shape, checked on every run: no two modules of `src/` (or
//! of the sandbox's crate) import each other, directly or around a loop,
//! except clap's pairing of `cli` and `commands` (the parser names the
//! commands' arguments, the commands are run from the parsed line).
//!
//! An import is any `crate::`, `super::` or `self::` path in a file's code
//! (`use` lines and paths written inline), up to its unit tests. A module
//! reaching into its own children is how a folder is wired, not a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The files that may import each other: the command line and its commands.
const ALLOWED: &[&[&str]] = &[&["cli", "commands", "commands::completions"]];

type Module = Vec<String>;

/// The source folders of the workspace's crates.
fn sources() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    vec![root.join("src"), root.join("crates/shop-sandbox/src")]
}

/// Every module of the crate in `source` and its file.
fn modules(source: &Path) -> BTreeMap<Module, PathBuf> {
    let mut found = BTreeMap::new();
    let mut folders = vec![source.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let relative = path.strip_prefix(source).unwrap().with_extension("");
            let mut module: Module = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            found.insert(module, path);
        }
    }
    found
}

/// The code of a file: its lines up to the unit tests, without comments.
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path of a `use` tree, expanded: `super::{a, b::{C, D}}` gives
/// `super::a`, `super::b::C`, `super::b::D`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.len() - 1];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (index, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|part| !part.is_empty())
        .flat_map(|part| {
            expand(part)
                .into_iter()
                .map(move |path| format!("{prefix}{path}"))
        })
        .collect()
}

/// The paths a file names: its `use` trees, expanded, and inline paths.
fn paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(end) = rest.find(';') {
            paths.extend(expand(&rest[..end]));
        }
    }
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(start) {
            let before = at.checked_sub(1).map(|index| bytes[index] as char);
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path);
        }
    }
    paths
}

/// The module a path leads into, from the module `from`: the longest
/// prefix that is a module.
fn resolve(path: &str, from: &Module, modules: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let mut segments = path.split("::").filter(|s| !s.is_empty());
    let mut module: Module = match segments.next()? {
        "crate" => Vec::new(),
        "self" => from.clone(),
        "super" => from[..from.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    let mut rest: Vec<&str> = segments.collect();
    while rest.first() == Some(&"super") {
        module.pop();
        rest.remove(0);
    }
    let mut best = module.clone();
    for segment in rest {
        module.push(segment.to_string());
        if modules.contains_key(&module) {
            best = module.clone();
        } else {
            break;
        }
    }
    Some(best)
}

fn imports(source: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules(source);
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let targets: BTreeSet<Module> = paths(&code(file))
            .iter()
            .filter_map(|path| resolve(path, module, &modules))
            .filter(|target| !target.starts_with(module))
            .collect();
        graph.insert(module.clone(), targets);
    }
    graph
}

/// The strongly connected components of more than one module (Tarjan).
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<BTreeSet<Module>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        found: Vec<BTreeSet<Module>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, node: &'a Module) {
        let number = walk.index.len();
        walk.index.insert(node, number);
        walk.low.insert(node, number);
        walk.stack.push(node);
        walk.on_stack.insert(node);
        for next in walk.graph.get(node).into_iter().flatten() {
            let Some((next, _)) = walk.graph.get_key_value(next) else {
                continue;
            };
            if !walk.index.contains_key(next) {
                visit(walk, next);
                let low = walk.low[node].min(walk.low[next]);
                walk.low.insert(node, low);
            } else if walk.on_stack.contains(next) {
                let low = walk.low[node].min(walk.index[next]);
                walk.low.insert(node, low);
            }
        }
        if walk.low[node] == walk.index[node] {
            let mut component = BTreeSet::new();
            while let Some(member) = walk.stack.pop() {
                walk.on_stack.remove(member);
                component.insert(member.clone());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                walk.found.push(component);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node) {
            visit(&mut walk, node);
        }
    }
    walk.found
}

fn named(module: &Module) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        module.join("::")
    }
}

#[test]
fn no_two_modules_import_each_other() {
    let graphs: Vec<_> = sources().iter().map(|source| imports(source)).collect();
    assert!(
        graphs.iter().all(|graph| graph.len() > 10),
        "the crates were read"
    );
    let allowed: Vec<BTreeSet<String>> = ALLOWED
        .iter()
        .map(|circle| circle.iter().map(|name| name.to_string()).collect())
        .collect();
    let unexpected: Vec<String> = graphs
        .iter()
        .flat_map(circles)
        .map(|circle| circle.iter().map(named).collect::<BTreeSet<String>>())
        .filter(|circle| !allowed.contains(circle))
        .map(|circle| {
            let members: Vec<String> = circle.into_iter().collect();
            members.join(" <-> ")
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "modules that import each other (move what both need below both):\n{}",
        unexpected.join("\n")
    );
}

#[test]
fn the_error_module_imports_nothing_of_the_crate() {
    let graph = imports(&sources()[0]);
    let error = graph.get(&vec!["error".to_string()]).expect("src/error.rs");
    assert!(
        error.is_empty(),
        "`error` must sit below every module whose errors it renders; it imports {:?}",
        error.iter().map(named).collect::<Vec<_>>()
    );
}

#[test]
fn the_reader_sees_a_loop_of_two() {
    // The check itself: a loop made of two files' imports is found.
    let mut graph = BTreeMap::new();
    let a = vec!["a".to_string()];
    let b = vec!["b".to_string()];
    let c = vec!["c".to_string()];
    graph.insert(a.clone(), BTreeSet::from([b.clone()]));
    graph.insert(b.clone(), BTreeSet::from([a.clone(), c.clone()]));
    graph.insert(c.clone(), BTreeSet::new());
    assert_eq!(circles(&graph), vec![BTreeSet::from([a, b])]);
    assert_eq!(
        expand("super::{api, sessions::{self, NewSession}}"),
        [
            "super::api",
            "super::sessions::self",
            "super::sessions::NewSession"
        ]
    );
}
