//! Every entry point of pyaya-native carries `#[pyaya_guard::guard(..)]` before PyO3's attribute, so no panic can
//! reach Python unguarded: this reads the crate's sources and fails naming any `#[pymethods]` block,
//! `#[pyfunction]` or `#[pymodule]` without it, and any `#[pyo3(get)]`/`#[pyo3(set)]` field (PyO3 generates
//! those accessors, so the guard cannot wrap them: write a guarded `#[getter]` instead).

use std::path::{Path, PathBuf};

use syn::visit::Visit;
use syn::{Attribute, Field, ItemFn, ItemImpl};

fn last_segment(attribute: &Attribute) -> String {
    attribute
        .path()
        .segments
        .last()
        .map(|segment| segment.ident.to_string())
        .unwrap_or_default()
}

struct Coverage {
    file: PathBuf,
    entry_points: usize,
    problems: Vec<String>,
}

impl Coverage {
    fn check(&mut self, attributes: &[Attribute], what: &str, line: usize) {
        let Some(pyo3) = attributes.iter().position(|a| {
            matches!(
                last_segment(a).as_str(),
                "pymethods" | "pyfunction" | "pymodule"
            )
        }) else {
            return;
        };
        self.entry_points += 1;
        let guard = attributes.iter().position(|a| last_segment(a) == "guard");
        match guard {
            Some(at) if at < pyo3 => {}
            Some(_) => self.problems.push(format!(
                "{}:{line}: {what}: #[guard] must come before #[{}]",
                self.file.display(),
                last_segment(&attributes[pyo3])
            )),
            None => self.problems.push(format!(
                "{}:{line}: {what} has no #[pyaya_guard::guard(..)]",
                self.file.display()
            )),
        }
    }
}

impl Visit<'_> for Coverage {
    fn visit_item_impl(&mut self, block: &ItemImpl) {
        let line = block.impl_token.span.start().line;
        let owner = quote_type(&block.self_ty);
        self.check(&block.attrs, &format!("impl {owner}"), line);
        syn::visit::visit_item_impl(self, block);
    }

    fn visit_item_fn(&mut self, function: &ItemFn) {
        let line = function.sig.fn_token.span.start().line;
        self.check(&function.attrs, &format!("fn {}", function.sig.ident), line);
        syn::visit::visit_item_fn(self, function);
    }

    fn visit_field(&mut self, field: &Field) {
        for attribute in &field.attrs {
            if last_segment(attribute) != "pyo3" {
                continue;
            }
            let mut generated = false;
            // Only the flags matter here; other pyo3 field options are left for PyO3 to check.
            let _ = attribute.parse_nested_meta(|meta| {
                generated |= meta.path.is_ident("get") || meta.path.is_ident("set");
                if meta.input.peek(syn::Token![=]) {
                    let _: syn::Expr = meta.value()?.parse()?;
                }
                Ok(())
            });
            if generated {
                self.problems.push(format!(
                    "{}: field {:?} has a PyO3-generated accessor, which no guard wraps",
                    self.file.display(),
                    field
                        .ident
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ));
            }
        }
        syn::visit::visit_field(self, field);
    }
}

fn quote_type(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(path) => path
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        _ => "?".into(),
    }
}

fn sources(folder: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(folder)
        .unwrap_or_else(|err| panic!("reading {}: {err}", folder.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_native_entry_point_is_guarded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pyaya-native/src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(!files.is_empty(), "no sources under {}", root.display());
    let mut entry_points = 0;
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        let parsed = syn::parse_file(&text)
            .unwrap_or_else(|err| panic!("{}: not parseable: {err}", file.display()));
        let mut coverage = Coverage {
            file: file.strip_prefix(&root).unwrap_or(&file).to_path_buf(),
            entry_points: 0,
            problems: Vec::new(),
        };
        coverage.visit_file(&parsed);
        entry_points += coverage.entry_points;
        problems.extend(coverage.problems);
    }
    assert!(
        problems.is_empty(),
        "unguarded entry points:\n{}",
        problems.join("\n")
    );
    // The crate has a module function, pyfunctions and method blocks: finding none means this test is broken.
    assert!(entry_points > 10, "only {entry_points} entry points found");
}
