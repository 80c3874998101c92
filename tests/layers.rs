//! The module layering of `src/` (README "Code map"): data flows down the request path, so a
//! module may use only modules of a lower layer, or of its own unit. Checked on the source
//! text: every `crate::…` path outside comments and `#[cfg(test)]` code is resolved to the
//! layer table below, and an upward use is a failure naming the file, the line and both
//! layers.

use std::path::{Path, PathBuf};

/// (module path prefix, rank, why it sits there). The longest matching prefix decides; a
/// use is allowed when the target's rank is lower, or when both are in the same unit.
const LAYERS: &[(&str, u32)] = &[
    ("error", 0),
    ("markup", 0),
    ("secret", 0),
    ("media", 1),
    ("protect", 2),
    ("source", 6),
    ("source::storage", 2),
    ("source::index", 3),
    ("source::ism", 3),
    ("source::timeline", 4),
    ("source::asset", 5),
    ("source::live", 6),
    ("store", 3),
    ("plan", 7),
    ("output", 8),
    ("config", 9),
    ("serve", 10),
    ("ingest", 11),
    ("manage", 12),
];

fn unit_of(path: &str) -> Option<(&'static str, u32)> {
    LAYERS
        .iter()
        .filter(|(prefix, _)| path == *prefix || path.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .copied()
}

/// `src/a/b.rs` → `a::b`; `src/a/mod.rs` → `a`.
fn module_of(file: &Path, src: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).filter(|p| p != "mod").collect();
    parts.join("::")
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

/// `crate::` paths used in non-test, non-comment code: (line number, path).
fn crate_uses(text: &str) -> Vec<(usize, String)> {
    let mut uses = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap();
        if line.trim_start().starts_with("#[cfg(test)]") {
            break; // test modules close the file in this code base
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let path: String =
                rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
            uses.push((n + 1, path.trim_end_matches(':').to_string()));
        }
    }
    uses
}

#[test]
fn no_module_uses_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let module = module_of(file, &src);
        if module == "main" || module == "lib" {
            continue; // the binary and the crate root sit above every layer
        }
        let (unit, rank) = unit_of(&module).unwrap_or_else(|| panic!("{module} ({}) is in no layer", file.display()));
        let text = std::fs::read_to_string(file).unwrap();
        for (line, path) in crate_uses(&text) {
            let Some((target_unit, target_rank)) = unit_of(&path) else {
                continue; // re-exports at the crate root (`crate::Error`)
            };
            checked += 1;
            if target_unit != unit && target_rank >= rank {
                violations.push(format!(
                    "src/{}:{line}: {module} ({unit}, layer {rank}) uses crate::{path} ({target_unit}, layer {target_rank})",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(checked > 100, "only {checked} uses found: is the scan broken?");
    assert!(violations.is_empty(), "{} upward uses:\n{}", violations.len(), violations.join("\n"));
}

#[test]
fn the_scan_sees_uses_and_skips_comments_and_tests() {
    let text = "use crate::media::mp4::FourCC;\n// crate::serve\nfn f() { crate::plan::url::parse(x) }\n#[cfg(test)]\nuse crate::serve;\n";
    let uses: Vec<String> = crate_uses(text).into_iter().map(|(_, p)| p).collect();
    assert_eq!(uses, ["media::mp4::FourCC", "plan::url::parse"]);
    assert_eq!(unit_of("source::index::TrackInfo"), Some(("source::index", 3)));
    assert_eq!(unit_of("sourcery"), None);
}
