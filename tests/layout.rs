//! The layering rule of the source tree (README, "Layout"), checked on the code itself so
//! that it cannot drift: which room (top-level module) may import which, and no import cycle
//! between files. Imports are read as text (`crate::…` and `super::…` paths outside
//! comments), which is what the rule speaks of.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pure cores: no I/O, nothing of otad's but each other.
const CORES: [&str; 6] = ["model", "ota", "rollout", "hashtree", "ocp", "signing"];
/// Small modules every layer may use.
const LEAVES: [&str; 6] = ["ids", "secrets", "datadir", "config", "logsink", "body"];
/// What answers the network.
const SERVERS: [&str; 4] = ["server", "api", "web", "serve"];

/// The rooms `room` may import besides itself.
fn allowed(room: &str) -> BTreeSet<&'static str> {
    let cores: BTreeSet<&str> = CORES.into_iter().collect();
    let leaves: BTreeSet<&str> = LEAVES.into_iter().collect();
    let base: BTreeSet<&str> = cores.union(&leaves).copied().collect();
    match room {
        r if CORES.contains(&r) => cores,
        r if LEAVES.contains(&r) => base,
        "store" => base,
        "client" => base,
        r if SERVERS.contains(&r) => {
            let mut a = base;
            a.extend(["store"]);
            a.extend(SERVERS);
            a
        }
        // The command line: the clients, the store for the offline database tools, and
        // `serve` to run the server; never a server's internals.
        "cli" => {
            let mut a = base;
            a.extend(["client", "store", "serve"]);
            a
        }
        other => panic!(
            "src/{other}: a room the layering rule does not know; add it to tests/layout.rs and the README"
        ),
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/store/catalog/mod.rs` → ["store", "catalog"].
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

/// Code without comments and string literals' contents (a path in a doc comment or an
/// error message is not an import).
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = '\0';
        let mut kept = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_str && c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                kept.push(c);
            }
            prev = c;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// Every module path the code names with `crate::` or `super::` (expanded through one
/// level of `{…}` groups), as absolute module paths.
fn imports(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (start, prefix) in code
        .match_indices("crate::")
        .map(|(i, _)| (i, "crate::"))
        .chain(code.match_indices("super::").map(|(i, _)| (i, "super::")))
    {
        if start > 0
            && code[..start]
                .chars()
                .next_back()
                .is_some_and(|c| ident(c) || c == ':')
        {
            continue;
        }
        let rest = &code[start + prefix.len()..];
        let base: Vec<String> = if prefix == "crate::" {
            Vec::new()
        } else {
            // `super` is the parent module (a `mod.rs` already stands for its folder).
            let mut m = module.to_vec();
            m.pop();
            m
        };
        let path: String = rest
            .chars()
            .take_while(|c| ident(*c) || *c == ':')
            .collect();
        let mut segs: Vec<String> = base;
        segs.extend(
            path.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        let after = &rest[path.len()..];
        if path.ends_with("::") && after.starts_with('{') {
            let group: String = after[1..].chars().take_while(|c| *c != '}').collect();
            for item in group.split(',') {
                let item: String = item
                    .trim()
                    .chars()
                    .take_while(|c| ident(*c) || *c == ':')
                    .collect();
                if item.is_empty() || item == "self" {
                    found.push(segs.clone());
                    continue;
                }
                let mut s = segs.clone();
                s.extend(
                    item.split("::")
                        .filter(|x| !x.is_empty())
                        .map(str::to_string),
                );
                found.push(s);
            }
        } else {
            found.push(segs);
        }
    }
    found
}

struct Tree {
    /// Module path → file.
    files: BTreeMap<Vec<String>, PathBuf>,
}

impl Tree {
    fn read() -> Tree {
        let mut list = Vec::new();
        rust_files(&src(), &mut list);
        let files = list
            .into_iter()
            .filter(|f| !f.ends_with("main.rs"))
            .map(|f| (module_of(&f), f))
            .collect();
        Tree { files }
    }

    /// The file that defines the longest prefix of `path` that is a module.
    fn resolve(&self, path: &[String]) -> Option<&PathBuf> {
        (1..=path.len())
            .rev()
            .find_map(|n| self.files.get(&path[..n]))
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(src()).unwrap_or(p).display().to_string()
}

/// File → the files it imports (other than itself and its own ancestors' `mod.rs`, which
/// declare it).
fn graph(tree: &Tree) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut g = BTreeMap::new();
    for (module, file) in &tree.files {
        let text = std::fs::read_to_string(file).expect("read source");
        let mut to = BTreeSet::new();
        for path in imports(module, &code_of(&text)) {
            if let Some(target) = tree.resolve(&path)
                && target != file
            {
                to.insert(target.clone());
            }
        }
        g.insert(file.clone(), to);
    }
    g
}

#[test]
fn rooms_import_only_what_the_layering_rule_allows() {
    let tree = Tree::read();
    let mut broken = Vec::new();
    for (module, file) in &tree.files {
        let Some(room) = module.first() else { continue };
        let text = std::fs::read_to_string(file).expect("read source");
        let ok = allowed(room);
        for path in imports(module, &code_of(&text)) {
            let Some(target) = path.first() else { continue };
            if target == room || !tree.files.contains_key(&path[..1]) {
                continue;
            }
            if !ok.contains(target.as_str()) {
                broken.push(format!("{} imports {}", rel(file), path.join("::")));
            }
        }
    }
    broken.sort();
    broken.dedup();
    assert!(
        broken.is_empty(),
        "imports across the layering rule:\n{}",
        broken.join("\n")
    );
}

#[test]
fn no_import_cycle_between_files() {
    let tree = Tree::read();
    let g = graph(&tree);
    // Ancestors declare their children (`mod x;`) and may re-export them: an edge from a
    // module root to its own descendant is that, not an import of a helper.
    let is_ancestor = |root: &Path, file: &Path| {
        (root.ends_with("mod.rs") || root.ends_with("lib.rs"))
            && root.parent().is_some_and(|dir| file.starts_with(dir))
    };
    let mut cycles = Vec::new();
    for (a, targets) in &g {
        for b in targets {
            if is_ancestor(a, b) || is_ancestor(b, a) {
                continue;
            }
            // Is there a path back from b to a that avoids declaring edges?
            let mut seen = BTreeSet::new();
            let mut stack = vec![(b.clone(), vec![b.clone()])];
            while let Some((node, trail)) = stack.pop() {
                if !seen.insert(node.clone()) {
                    continue;
                }
                for next in g.get(&node).into_iter().flatten() {
                    if is_ancestor(&node, next) || is_ancestor(next, &node) {
                        continue;
                    }
                    if next == a {
                        let mut names: Vec<String> = std::iter::once(a)
                            .chain(trail.iter())
                            .map(|p| rel(p))
                            .collect();
                        names.push(rel(a));
                        cycles.push(names.join(" -> "));
                    } else {
                        let mut t = trail.clone();
                        t.push(next.clone());
                        stack.push((next.clone(), t));
                    }
                }
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(
        cycles.is_empty(),
        "import cycles between files:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_import_reader_sees_imports_and_skips_comments() {
    let code = code_of(
        "use crate::store::{Store, devices::X};\n// crate::web::x\nlet s = \"crate::cli\";\nsuper::wire::f();\n",
    );
    let m = vec!["server".to_string(), "device".to_string()];
    let found = imports(&m, &code);
    assert!(found.contains(&vec!["store".into(), "Store".into()]));
    assert!(found.contains(&vec!["store".into(), "devices".into(), "X".into()]));
    assert!(found.contains(&vec!["server".into(), "wire".into(), "f".into()]));
    assert!(
        !found
            .iter()
            .any(|p| p.first().is_some_and(|r| r == "web" || r == "cli"))
    );
}
