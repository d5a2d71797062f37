//! `#[pyaya_guard::guard(Kind)]`: the attribute that keeps Rust panics from crossing into Python.
//!
//! Put it above `#[pymethods]` on an impl block, or above `#[pyfunction]` / `#[pymodule]` on a function. Every
//! method or function body then runs inside `crate::errors::guard_result` (bodies returning `PyResult`/`Result`)
//! or `crate::errors::guard_value` (the others, whose return type becomes `PyResult<T>`), which catch a panic and
//! raise the `pyaya.errors` class `crate::errors::Kind::<Kind>` instead. `tests/coverage.rs` fails when an entry
//! point of pyaya-native lacks the attribute.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::ToTokens as _;
use syn::spanned::Spanned as _;
use syn::{
    parse_macro_input, parse_quote, Attribute, Block, Ident, ImplItem, Item, ReturnType, Signature,
    Type,
};

/// Special methods whose signatures PyO3 fixes and which cannot return `PyResult` (GC support).
const UNWRAPPED: &[&str] = &["__traverse__", "__clear__"];

fn has_attribute(attributes: &[Attribute], names: &[&str]) -> bool {
    attributes.iter().any(|attribute| {
        attribute
            .path()
            .segments
            .last()
            .is_some_and(|segment| names.iter().any(|name| segment.ident == name))
    })
}

/// Whether the declared return type is already a `Result` (PyO3 accepts `Result<T, E>` with `E: Into<PyErr>`).
fn returns_result(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let Type::Path(path) = &**ty else {
        return false;
    };
    path.path
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "PyResult" || segment.ident == "Result")
}

fn wrap(kind: &Ident, what: &str, signature: &mut Signature, block: &mut Block) {
    let body = &*block;
    let guarded: Block = if returns_result(&signature.output) {
        parse_quote!({
            crate::errors::guard_result(crate::errors::Kind::#kind, #what, move || #body)
        })
    } else {
        let value: Type = match &signature.output {
            ReturnType::Type(_, ty) => (**ty).clone(),
            ReturnType::Default => parse_quote!(()),
        };
        signature.output = parse_quote!(-> ::pyo3::PyResult<#value>);
        // The closure declares the original type, so the body's deref coercions (`&String` to `&str`) still apply.
        parse_quote!({
            crate::errors::guard_value(crate::errors::Kind::#kind, #what, move || -> #value #body)
        })
    };
    *block = guarded;
}

fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .map(|segment| segment.ident.to_string())
            .unwrap_or_default(),
        other => other.to_token_stream().to_string(),
    }
}

fn expand(kind: &Ident, item: Item) -> syn::Result<TokenStream2> {
    match item {
        Item::Impl(mut block) => {
            if !has_attribute(&block.attrs, &["pymethods"]) {
                return Err(syn::Error::new(
                    block.span(),
                    "#[guard] goes above #[pymethods] (it must see the block before PyO3 does)",
                ));
            }
            let owner = type_name(&block.self_ty);
            for entry in &mut block.items {
                if let ImplItem::Fn(method) = entry {
                    let name = method.sig.ident.to_string();
                    if UNWRAPPED.contains(&name.as_str()) {
                        continue;
                    }
                    wrap(kind, &format!("{owner}.{name}"), &mut method.sig, &mut method.block);
                }
            }
            Ok(block.into_token_stream())
        }
        Item::Fn(mut function) => {
            if !has_attribute(&function.attrs, &["pyfunction", "pymodule"]) {
                return Err(syn::Error::new(
                    function.span(),
                    "#[guard] goes above #[pyfunction] or #[pymodule]",
                ));
            }
            let name = function.sig.ident.to_string();
            wrap(kind, &name, &mut function.sig, &mut function.block);
            Ok(function.into_token_stream())
        }
        other => Err(syn::Error::new(
            other.span(),
            "#[guard] applies to a #[pymethods] impl block or a #[pyfunction] / #[pymodule] function",
        )),
    }
}

/// Catches panics in every body of the block or function it marks and raises `pyaya.errors.<Kind>Error` instead.
/// `Kind` is a variant of `crate::errors::Kind` (`Object`, `Load`, `Program`, `Map`...).
#[proc_macro_attribute]
pub fn guard(attribute: TokenStream, item: TokenStream) -> TokenStream {
    let kind = parse_macro_input!(attribute as Ident);
    let item = parse_macro_input!(item as Item);
    expand(&kind, item)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
