//! BTF for Python: `Btf`, a parsed BTF blob (an object's `.BTF`, or the kernel's, parsed once per process) that
//! answers queries by type id and name; Python builds its type records and codecs from what it returns. Also the
//! kernel struct member offsets that kernel-side Rust needs (no CO-RE), and bpf-linker's type names.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use pyaya_core::btf::{Btf as CoreBtf, Detail, Endian, Kind as BtfKind, Type};
use pyaya_core::elf::Elf;
use pyaya_core::names::{self, RustType};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::errors::{new_err, Kind};

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// The kernel's BTF, parsed on first use and kept for the process (a failure is not kept: it may be retried).
static KERNEL: Mutex<Option<Arc<CoreBtf>>> = Mutex::new(None);

fn read_kernel(path: &Path) -> Result<CoreBtf, (Kind, String)> {
    let data = std::fs::read(path).map_err(|err| {
        (
            Kind::NotFound,
            format!(
                "cannot read kernel BTF at {}: {err} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)",
                path.display()
            ),
        )
    })?;
    CoreBtf::parse(&data).map_err(|err| (Kind::Object, format!("{}: {err}", path.display())))
}

/// The running kernel's BTF (or the BTF file at `path`, parsed each time), with the GIL released while parsing.
pub fn kernel(py: Python<'_>, path: Option<&Path>) -> PyResult<Arc<CoreBtf>> {
    let result = py.detach(|| match path {
        Some(path) if path != Path::new(VMLINUX) => read_kernel(path).map(Arc::new),
        _ => {
            let mut cached = KERNEL.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(btf) = cached.as_ref() {
                return Ok(Arc::clone(btf));
            }
            let btf = Arc::new(read_kernel(Path::new(VMLINUX))?);
            *cached = Some(Arc::clone(&btf));
            Ok(btf)
        }
    });
    result.map_err(|(kind, message)| new_err(kind, message))
}

/// The `.BTF` of an ELF object, `None` when it has none.
pub fn object_btf(data: &[u8]) -> PyResult<Option<CoreBtf>> {
    let elf = Elf::parse(data).map_err(|err| new_err(Kind::Object, err.to_string()))?;
    let Some(section) = elf.section(".BTF") else {
        return Ok(None);
    };
    CoreBtf::parse(elf.section_data(section))
        .map(Some)
        .map_err(|err| new_err(Kind::Object, format!("the object's .BTF: {err}")))
}

fn btf_error(err: pyaya_core::btf::Error) -> PyErr {
    new_err(Kind::Object, err.to_string())
}

/// Parsed BTF: types by id (0 is void), lookups by name, and layout queries that are bounded on any input.
#[pyclass(module = "pyaya._native", frozen)]
pub struct Btf {
    btf: Arc<CoreBtf>,
}

impl Btf {
    fn checked(&self, id: u32) -> PyResult<Type> {
        self.btf
            .type_by_id(id)
            .map_err(|err| new_err(Kind::NotFound, err.to_string()))
    }

    fn kind_filter(kind: Option<u8>) -> PyResult<Option<BtfKind>> {
        kind.map(|number| {
            BtfKind::from_number(u32::from(number)).ok_or_else(|| {
                new_err(
                    Kind::NotFound,
                    format!("no BTF kind {number} (kinds are 1 to 19)"),
                )
            })
        })
        .transpose()
    }
}

#[pyaya_guard::guard(Object)]
#[pymethods]
impl Btf {
    /// Parses a raw BTF blob; raises ObjectError saying what is malformed.
    #[staticmethod]
    fn parse(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let btf = py.detach(|| CoreBtf::parse(data)).map_err(btf_error)?;
        Ok(Self { btf: Arc::new(btf) })
    }

    /// The `.BTF` section of an ELF object, or None when it has none.
    #[staticmethod]
    fn from_object(py: Python<'_>, data: &[u8]) -> PyResult<Option<Self>> {
        let btf = py.detach(|| object_btf(data))?;
        Ok(btf.map(|btf| Self { btf: Arc::new(btf) }))
    }

    /// The running kernel's BTF (parsed once per process), or the BTF file at `path`.
    #[staticmethod]
    #[pyo3(signature = (path = None))]
    fn kernel(py: Python<'_>, path: Option<PathBuf>) -> PyResult<Self> {
        Ok(Self {
            btf: kernel(py, path.as_deref())?,
        })
    }

    /// The BTF as one raw blob (header, types, strings) in its own byte order.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        let blob = py.detach(|| self.btf.to_bytes());
        pyo3::types::PyBytes::new(py, &blob)
    }

    fn __len__(&self) -> usize {
        self.btf.len()
    }

    /// `"<"` or `">"`: the byte order of the BTF, and so of the target's data.
    #[getter]
    fn endian(&self) -> &'static str {
        match self.btf.endian() {
            Endian::Little => "<",
            Endian::Big => ">",
        }
    }

    /// `(kind, name, size, kind_flag, detail)` of type `id`; `detail` depends on the kind (see the stub).
    fn record<'py>(&self, py: Python<'py>, id: u32) -> PyResult<Bound<'py, PyTuple>> {
        let t = self.checked(id)?;
        let btf = &*self.btf;
        let detail: Bound<'py, PyAny> = match (t.detail, t.kind) {
            (
                Detail::Int {
                    encoding,
                    offset,
                    bits,
                },
                _,
            ) => (encoding, offset, bits).into_pyobject(py)?.into_any(),
            (
                Detail::Array {
                    element,
                    index,
                    count,
                },
                _,
            ) => (element, index, count).into_pyobject(py)?.into_any(),
            (Detail::List(_), BtfKind::Struct | BtfKind::Union) => {
                let members = btf
                    .members(&t)
                    .map(|m| (btf.string(m.name), m.type_id, m.bit_offset, m.bitfield_size));
                PyTuple::new(py, members)?.into_any()
            }
            (Detail::List(_), BtfKind::Enum | BtfKind::Enum64) => {
                let values = btf.values(&t).map(|v| (btf.string(v.name), v.value));
                PyTuple::new(py, values)?.into_any()
            }
            (Detail::List(_), BtfKind::FuncProto) => {
                let params = btf.params(&t).map(|p| (btf.string(p.name), p.type_id));
                (t.size_or_type, PyTuple::new(py, params)?)
                    .into_pyobject(py)?
                    .into_any()
            }
            (Detail::List(_), _) => {
                let vars = btf.vars(&t).map(|v| (v.type_id, v.offset, v.size));
                PyTuple::new(py, vars)?.into_any()
            }
            (Detail::Linkage(linkage), _) => {
                (t.size_or_type, linkage).into_pyobject(py)?.into_any()
            }
            (Detail::Component(index), _) => (t.size_or_type, index).into_pyobject(py)?.into_any(),
            (Detail::None, BtfKind::Func) => (t.size_or_type, t.vlen).into_pyobject(py)?.into_any(),
            (Detail::None, kind) if t.target().is_some() || kind.is_modifier() => {
                (t.size_or_type,).into_pyobject(py)?.into_any()
            }
            (Detail::None, _) => PyTuple::empty(py).into_any(),
        };
        (
            t.kind as u8,
            btf.string(t.name),
            t.size(),
            t.kind_flag,
            detail,
        )
            .into_pyobject(py)
    }

    /// The kind number of type `id`.
    fn kind_of(&self, id: u32) -> PyResult<u8> {
        Ok(self.checked(id)?.kind as u8)
    }

    /// The name of type `id` (`""` when anonymous).
    fn name_of(&self, id: u32) -> PyResult<String> {
        self.checked(id)?;
        Ok(self.btf.name_of(id).into_owned())
    }

    /// Ids of every type called `name` (of kind number `kind`, when given), in id order.
    #[pyo3(signature = (name, kind = None))]
    fn find(&self, name: &str, kind: Option<u8>) -> PyResult<Vec<u32>> {
        Ok(self.btf.find(name, Self::kind_filter(kind)?))
    }

    /// The names of every type of kind number `kind`, each once, sorted.
    fn names<'py>(&self, py: Python<'py>, kind: u8) -> PyResult<Bound<'py, PyList>> {
        let kind = Self::kind_filter(Some(kind))?.unwrap_or(BtfKind::Void);
        PyList::new(py, self.btf.names(kind))
    }

    /// The id behind `id` with typedefs and qualifiers skipped.
    fn resolve(&self, id: u32) -> PyResult<u32> {
        self.checked(id)?;
        self.btf.resolve(id).map_err(btf_error)
    }

    /// Byte size of a value of type `id`, None for types without one.
    fn size_of(&self, id: u32) -> PyResult<Option<u64>> {
        self.checked(id)?;
        self.btf.size_of(id).map_err(btf_error)
    }

    /// A short label for messages (`struct event`, `u32`).
    fn describe(&self, id: u32) -> PyResult<String> {
        self.checked(id)?;
        Ok(self.btf.describe(id))
    }

    /// `(bit offset, (name, type_id, bit_offset, bitfield_size))` of the dotted `path` in composite `id`, looking
    /// through anonymous members; NotFoundError naming what is missing. `label` names the composite in messages.
    fn member(&self, id: u32, label: &str, path: &str) -> PyResult<(u64, (String, u32, u32, u8))> {
        self.checked(id)?;
        let (bits, member) = self
            .btf
            .member_path(id, label, path)
            .map_err(|err| new_err(Kind::NotFound, err.to_string()))?;
        Ok((
            bits,
            (
                self.btf.string(member.name).into_owned(),
                member.type_id,
                member.bit_offset,
                member.bitfield_size,
            ),
        ))
    }

    /// Checks that values of type `id` can be decoded (no type containing itself, bounded nesting and size);
    /// returns the size, or raises ObjectError saying why not.
    fn check_value(&self, id: u32) -> PyResult<u64> {
        self.checked(id)?;
        self.btf.check_value(id).map_err(btf_error)
    }

    /// Every type as a C header (bpftool's `format c`: vmlinux.h for the kernel's BTF), with the GIL released.
    fn to_c_header(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| pyaya_core::btf_c::to_c_header(&self.btf))
            .map_err(btf_error)
    }

    /// Byte offsets of `members` (dotted paths allowed) of the struct or union called `struct_name`; when several
    /// types have that name, the first that has the member wins. NotFoundError naming what is missing.
    fn member_offsets(
        &self,
        py: Python<'_>,
        struct_name: &str,
        members: Vec<String>,
    ) -> PyResult<Vec<u64>> {
        py.detach(|| member_offsets(&self.btf, struct_name, &members, ("the BTF", "")))
            .map_err(|message| new_err(Kind::NotFound, message))
    }
}

/// `whose` names the BTF in messages; `where_` ends a missing member's message (" in this kernel").
fn member_offsets(
    btf: &CoreBtf,
    struct_name: &str,
    members: &[String],
    (whose, where_): (&str, &str),
) -> Result<Vec<u64>, String> {
    let mut ids = btf.find(struct_name, Some(BtfKind::Struct));
    ids.extend(btf.find(struct_name, Some(BtfKind::Union)));
    if ids.is_empty() {
        return Err(format!("{whose} has no struct {struct_name}"));
    }
    members
        .iter()
        .map(|member| {
            ids.iter()
                .find_map(|&id| btf.member_path(id, struct_name, member).ok())
                .map(|(bits, _)| bits / 8)
                .ok_or_else(|| format!("struct {struct_name} has no member {member}{where_}"))
        })
        .collect()
}

/// Byte offsets of `members` of kernel struct `struct_name`, from the BTF file at `path` (default: the running
/// kernel's, parsed once per process). Raises NotFoundError naming what is missing.
#[pyaya_guard::guard(Object)]
#[pyfunction]
#[pyo3(signature = (struct_name, members, path = None))]
pub fn kernel_member_offsets(
    py: Python<'_>,
    struct_name: &str,
    members: Vec<String>,
    path: Option<PathBuf>,
) -> PyResult<Vec<u64>> {
    let btf = kernel(py, path.as_deref())?;
    let shown = path.unwrap_or_else(|| PathBuf::from(VMLINUX));
    py.detach(|| {
        member_offsets(
            &btf,
            struct_name,
            &members,
            ("the kernel's BTF", " in this kernel"),
        )
    })
    .map_err(|message| new_err(Kind::NotFound, format!("{message} ({})", shown.display())))
}

fn rust_type<'py>(py: Python<'py>, parsed: &RustType) -> PyResult<Bound<'py, PyAny>> {
    // Arrays nest at most names::MAX_DEPTH deep, so this recursion is bounded.
    Ok(match parsed {
        RustType::Int { size, signed } => ("int", *size, *signed).into_pyobject(py)?.into_any(),
        RustType::Bool => ("bool",).into_pyobject(py)?.into_any(),
        RustType::Char => ("char",).into_pyobject(py)?.into_any(),
        RustType::Float { size } => ("float", *size).into_pyobject(py)?.into_any(),
        RustType::Array { element, count } => ("array", rust_type(py, element)?, *count)
            .into_pyobject(py)?
            .into_any(),
        RustType::Named(name) => ("named", name.as_str()).into_pyobject(py)?.into_any(),
        RustType::Unknown => py.None().into_bound(py),
    })
}

/// One Rust type as written in a generic argument: `("int", size, signed)`, `("bool",)`, `("char",)`,
/// `("float", size)`, `("array", element, count)`, `("named", last path segment)`, or None when unknown.
#[pyaya_guard::guard(Object)]
#[pyfunction]
pub fn parse_rust_type<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    rust_type(py, &names::parse_type(text))
}

/// `(base, [argument, ...])` of an escaped generic instantiation's BTF name (`HashMap_3C_u32_2C__20_u64_3E_`),
/// each argument as `parse_rust_type` returns it; None without an argument list.
#[pyaya_guard::guard(Object)]
#[pyfunction]
pub fn rust_type_arguments<'py>(
    py: Python<'py>,
    name: &str,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some((base, arguments)) = names::generic_arguments(name) else {
        return Ok(None);
    };
    let arguments = arguments
        .iter()
        .map(|argument| rust_type(py, argument))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Some((base, arguments).into_pyobject(py)?))
}

/// A BTF blob of the named types of the object's DWARF (`-g`), or None when it has no `.debug_info`; types
/// inside namespaces (Rust's) only with `namespaced`.
#[pyaya_guard::guard(Object)]
#[pyfunction]
#[pyo3(signature = (data, namespaced = false))]
pub fn btf_from_dwarf<'py>(
    py: Python<'py>,
    data: &[u8],
    namespaced: bool,
) -> PyResult<Option<Bound<'py, pyo3::types::PyBytes>>> {
    let blob = py
        .detach(|| pyaya_core::dwarf::btf_from_dwarf(data, namespaced))
        .map_err(|err| new_err(Kind::Object, format!("the object's DWARF: {err}")))?;
    Ok(blob.map(|blob| pyo3::types::PyBytes::new(py, &blob)))
}

/// `name` with bpf-linker's `_XX_` escapes turned back into characters (`HashMap<u32, u64>`).
#[pyaya_guard::guard(Object)]
#[pyfunction]
pub fn unescape_name(name: &str) -> String {
    names::unescape(name)
}

/// The C header of a raw BTF blob (`/sys/kernel/btf/vmlinux`'s bytes give vmlinux.h); ObjectError on malformed BTF.
#[pyaya_guard::guard(Object)]
#[pyfunction]
pub fn btf_to_c_header(py: Python<'_>, btf_bytes: &[u8]) -> PyResult<String> {
    py.detach(|| {
        let btf = CoreBtf::parse(btf_bytes)?;
        pyaya_core::btf_c::to_c_header(&btf)
    })
    .map_err(btf_error)
}
