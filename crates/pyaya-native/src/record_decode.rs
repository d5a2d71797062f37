//! Records decoded in Rust, straight from a batch of a stream's bytes into Python values, by a plan that Python
//! compiles from the record's BTF type (`pyaya.types.native_plan`). The values are the pure-Python plan's, for the
//! field kinds a plan covers; Python keeps every other type on its own path.

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyList, PyString, PyTuple, PyType};

/// How one value is read, at an offset of the record.
enum Op {
    /// A little-endian integer of 1, 2, 4 or 8 bytes.
    Int {
        size: usize,
        signed: bool,
    },
    /// `value != 0`.
    Bool {
        size: usize,
    },
    /// A little-endian `f32` or `f64`.
    Float {
        size: usize,
    },
    /// A byte array: text when it holds NUL-terminated printable UTF-8, else its bytes.
    TextOrBytes {
        len: usize,
    },
    /// A byte array as text up to its first NUL, undecodable bytes backslash-escaped.
    Text {
        len: usize,
    },
    /// Raw bytes.
    Bytes {
        len: usize,
    },
    /// A zero-sized member.
    Nothing,
    /// `count` elements `step` bytes apart, as a list.
    Array {
        count: usize,
        step: usize,
        element: Box<Op>,
    },
    Record(Box<Plan>),
    /// `op` (a leaf of at most `MEMO_SPAN` bytes whose value is immutable: an int, a float, text, bytes), whose
    /// last value is kept in memo `slot` of a batch: a record whose bytes there equal the previous one's gets the
    /// same object. Stream records repeat most of their fields (pid, comm, cpu, uid): each repeat costs a compare
    /// instead of an allocation, a decode and a deallocation.
    Memo {
        slot: usize,
        span: usize,
        op: Box<Op>,
    },
}

/// Widest leaf whose last value a batch keeps (a compare and a copy of this many bytes per record).
const MEMO_SPAN: usize = 64;

/// One memo of a batch: the bytes a leaf last read (up to 8 of them as one word, compared without a memcmp call:
/// most leaves are integers), and the value they gave.
#[derive(Default)]
struct Memo {
    word: u64,
    raw: Vec<u8>,
    value: Option<Py<PyAny>>,
}

impl Memo {
    /// The value kept for `raw`, when the last read was of the same bytes.
    fn get<'py>(&self, py: Python<'py>, raw: &[u8]) -> Option<Bound<'py, PyAny>> {
        let value = self.value.as_ref()?;
        let same = if raw.len() <= 8 {
            self.word == word_of(raw)
        } else {
            self.raw == raw
        };
        same.then(|| value.bind(py).clone())
    }

    fn set(&mut self, raw: &[u8], value: &Bound<'_, PyAny>) {
        if raw.len() <= 8 {
            self.word = word_of(raw);
        } else {
            self.raw.clear();
            self.raw.extend_from_slice(raw);
        }
        self.value = Some(value.clone().unbind());
    }
}

/// Up to 8 bytes as one little-endian word (zero-padded).
fn word_of(raw: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word[..raw.len()].copy_from_slice(raw);
    u64::from_le_bytes(word)
}

struct Plan {
    /// The record class: a subclass of `tuple` with no storage of its own (checked in `parse`).
    class: Py<PyType>,
    /// The class's `tp_alloc`: a record is allocated once, at its final size, and its items set in place.
    alloc: ffi::allocfunc,
    size: usize,
    fields: Vec<(usize, Op)>,
    /// Every field an int, a bool, a float, text, bytes, None or an atomic record: such a record can never be part
    /// of a reference cycle (an immutable tuple of values that refer to nothing), so it is taken off the garbage
    /// collector's lists as CPython takes such plain tuples off them, and no collection walks a batch of them.
    atomic: bool,
}

fn bad(what: &str) -> PyErr {
    PyValueError::new_err(format!("not a record plan: {what}"))
}

impl Op {
    /// How many bytes the value spans.
    fn span(&self) -> usize {
        match self {
            Self::Int { size, .. } | Self::Bool { size } | Self::Float { size } => *size,
            Self::TextOrBytes { len } | Self::Text { len } | Self::Bytes { len } => *len,
            Self::Nothing => 0,
            Self::Array {
                count,
                step,
                element,
            } => match count {
                0 => 0,
                count => (count - 1)
                    .saturating_mul(*step)
                    .saturating_add(element.span()),
            },
            Self::Record(plan) => plan.size,
            Self::Memo { span, .. } => *span,
        }
    }

    /// Whether the value is immutable and refers to no container (see `Plan::atomic`).
    fn is_atomic(&self) -> bool {
        match self {
            Self::Array { .. } => false, // a list
            Self::Record(plan) => plan.atomic,
            Self::Memo { op, .. } => op.is_atomic(),
            _ => true,
        }
    }

    /// `op` behind a memo when it is a leaf worth one (`memos` counts the slots handed out).
    fn memoized(op: Self, memos: &mut usize) -> Self {
        let worth = matches!(
            op,
            Self::Int { .. }
                | Self::Float { .. }
                | Self::TextOrBytes { .. }
                | Self::Text { .. }
                | Self::Bytes { .. }
        ) && op.span() <= MEMO_SPAN;
        if !worth {
            return op;
        }
        *memos += 1;
        Self::Memo {
            slot: *memos - 1,
            span: op.span(),
            op: Box::new(op),
        }
    }

    fn parse(spec: &Bound<'_, PyAny>, depth: usize, memos: &mut usize) -> PyResult<Self> {
        if depth > 32 {
            return Err(bad("nested more than 32 deep"));
        }
        let spec = spec
            .cast::<PyTuple>()
            .map_err(|_| bad("an op is not a tuple"))?;
        let kind: String = spec.get_item(0)?.extract()?;
        let number = |index: usize| -> PyResult<usize> { spec.get_item(index)?.extract() };
        let op = match kind.as_str() {
            "int" => {
                let size = number(1)?;
                if !matches!(size, 1 | 2 | 4 | 8) {
                    return Err(bad("an int of another size than 1, 2, 4 or 8 bytes"));
                }
                Self::Int {
                    size,
                    signed: spec.get_item(2)?.extract()?,
                }
            }
            "bool" => {
                let size = number(1)?;
                if !matches!(size, 1 | 2 | 4 | 8) {
                    return Err(bad("a bool of another size than 1, 2, 4 or 8 bytes"));
                }
                Self::Bool { size }
            }
            "float" => {
                let size = number(1)?;
                if !matches!(size, 4 | 8) {
                    return Err(bad("a float of another size than 4 or 8 bytes"));
                }
                Self::Float { size }
            }
            "text_or_bytes" => Self::TextOrBytes { len: number(1)? },
            "text" => Self::Text { len: number(1)? },
            "bytes" => Self::Bytes { len: number(1)? },
            "none" => Self::Nothing,
            "array" => Self::Array {
                count: number(1)?,
                step: number(2)?,
                element: Box::new(Self::parse(&spec.get_item(3)?, depth + 1, memos)?),
            },
            "record" => Self::Record(Box::new(Plan::parse(spec, depth + 1, memos)?)),
            other => return Err(bad(&format!("unknown op {other:?}"))),
        };
        Ok(Self::memoized(op, memos))
    }

    fn read<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        at: usize,
        memos: &mut [Memo],
    ) -> PyResult<Bound<'py, PyAny>> {
        let bytes = |len: usize| {
            data.get(at..at + len)
                .ok_or_else(|| bad("a field past the record's end"))
        };
        Ok(match self {
            Self::Int { size, signed } => {
                let raw = bytes(*size)?;
                let mut word = [0u8; 8];
                word[..*size].copy_from_slice(raw);
                let unsigned = u64::from_le_bytes(word);
                if *signed {
                    let shift = 64 - 8 * *size as u32;
                    (((unsigned << shift) as i64) >> shift)
                        .into_pyobject(py)?
                        .into_any()
                } else {
                    unsigned.into_pyobject(py)?.into_any()
                }
            }
            Self::Bool { size } => PyBool::new(py, bytes(*size)?.iter().any(|byte| *byte != 0))
                .to_owned()
                .into_any(),
            Self::Float { size } => {
                let raw = bytes(*size)?;
                let value = if *size == 4 {
                    f64::from(f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
                } else {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(raw);
                    f64::from_le_bytes(word)
                };
                PyFloat::new(py, value).into_any()
            }
            Self::TextOrBytes { len } => text_or_bytes(py, bytes(*len)?)?,
            Self::Text { len } => {
                let raw = bytes(*len)?;
                let head = &raw[..raw.iter().position(|byte| *byte == 0).unwrap_or(raw.len())];
                match std::str::from_utf8(head) {
                    Ok(text) => PyString::new(py, text).into_any(),
                    Err(_) => PyBytes::new(py, head)
                        .call_method1("decode", ("utf-8", "backslashreplace"))?,
                }
            }
            Self::Bytes { len } => PyBytes::new(py, bytes(*len)?).into_any(),
            Self::Nothing => py.None().into_bound(py),
            Self::Array {
                count,
                step,
                element,
            } => {
                let mut items = Vec::with_capacity(*count);
                for index in 0..*count {
                    items.push(element.read(py, data, at + index * step, memos)?);
                }
                PyList::new(py, items)?.into_any()
            }
            Self::Record(plan) => plan.read(py, data, at, memos)?,
            Self::Memo { slot, span, op } => {
                let raw = bytes(*span)?;
                let memo = memos
                    .get_mut(*slot)
                    .ok_or_else(|| bad("a memo slot past the plan's"))?;
                if let Some(value) = memo.get(py, raw) {
                    return Ok(value);
                }
                let value = op.read(py, data, at, &mut [])?;
                memo.set(raw, &value);
                value
            }
        })
    }
}

/// `pyaya.types._text_or_bytes`: text when `raw` holds NUL-terminated printable UTF-8, else `raw` itself.
fn text_or_bytes<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let Some(nul) = raw.iter().position(|byte| *byte == 0) else {
        return Ok(PyBytes::new(py, raw).into_any());
    };
    let head = &raw[..nul];
    if head.iter().all(|byte| (0x20..0x7f).contains(byte)) {
        // Printable ASCII is printable text: no need to ask str.isprintable().
        return Ok(PyString::new(py, std::str::from_utf8(head).unwrap_or_default()).into_any());
    }
    if let Ok(text) = std::str::from_utf8(head) {
        let text = PyString::new(py, text);
        if text.call_method0("isprintable")?.is_truthy()? {
            return Ok(text.into_any());
        }
    }
    Ok(PyBytes::new(py, raw).into_any())
}

impl Plan {
    /// `("record", class, size, ((offset, op), ...))`.
    fn parse(spec: &Bound<'_, PyTuple>, depth: usize, memos: &mut usize) -> PyResult<Self> {
        let py = spec.py();
        let class = spec
            .get_item(1)?
            .cast_into::<PyType>()
            .map_err(|_| bad("the record class is not a class"))?;
        let tuple = py.get_type::<PyTuple>();
        let layout = |of: &Bound<'_, PyType>| -> PyResult<(usize, usize)> {
            Ok((
                of.getattr("__basicsize__")?.extract()?,
                of.getattr("__itemsize__")?.extract()?,
            ))
        };
        if !class.is_subclass(&tuple)? || layout(&class)? != layout(&tuple)? {
            return Err(bad(
                "the record class is not a tuple subclass without slots of its own",
            ));
        }
        // SAFETY: the slot of a live type object; every type has tp_alloc (inherited from tuple here).
        let slot = unsafe { ffi::PyType_GetSlot(class.as_type_ptr(), ffi::Py_tp_alloc) };
        if slot.is_null() {
            return Err(bad("the record class has no allocator"));
        }
        // SAFETY: Py_tp_alloc's slot holds an allocfunc.
        let alloc = unsafe { std::mem::transmute::<*mut std::ffi::c_void, ffi::allocfunc>(slot) };
        let size: usize = spec.get_item(2)?.extract()?;
        let mut fields = Vec::new();
        for field in spec.get_item(3)?.try_iter()? {
            let field = field?;
            let field = field
                .cast::<PyTuple>()
                .map_err(|_| bad("a field is not a tuple"))?;
            let offset: usize = field.get_item(0)?.extract()?;
            let op = Op::parse(&field.get_item(1)?, depth, memos)?;
            if offset.checked_add(op.span()).is_none_or(|end| end > size) {
                return Err(bad("a field past the record's end"));
            }
            fields.push((offset, op));
        }
        let atomic = fields.iter().all(|(_, op)| op.is_atomic());
        Ok(Self {
            class: class.unbind(),
            alloc,
            size,
            fields,
            atomic,
        })
    }

    fn read<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        at: usize,
        memos: &mut [Memo],
    ) -> PyResult<Bound<'py, PyAny>> {
        let count = self.fields.len();
        // SAFETY: `alloc` is the record class's tp_alloc (a tuple subclass with tuple's layout, checked in
        // `parse`): it returns a new reference to a record of `count` empty items, or NULL with an exception set.
        let record = unsafe {
            let raw = (self.alloc)(self.class.as_ptr().cast(), count as ffi::Py_ssize_t);
            Bound::from_owned_ptr_or_err(py, raw)?
        };
        for (index, (offset, op)) in self.fields.iter().enumerate() {
            let value = op.read(py, data, at + offset, memos)?;
            // SAFETY: `record` is a tuple (subclass) of `count` items that nothing else has seen yet; SetItem steals
            // the value's reference and fills an empty slot.
            if unsafe {
                ffi::PyTuple_SetItem(record.as_ptr(), index as ffi::Py_ssize_t, value.into_ptr())
            } != 0
            {
                return Err(PyErr::fetch(py));
            }
        }
        if self.atomic {
            // SAFETY: `record` is a live GC object (tp_alloc of a GC type tracks it) whose items refer to no
            // container, so no cycle can pass through it: the collector need not see it (see `Plan::atomic`).
            unsafe { ffi::PyObject_GC_UnTrack(record.as_ptr().cast()) };
        }
        Ok(record)
    }
}

/// Python's cyclic garbage collector held off while a batch is built. Each record (and each array in it) is a
/// tracked container: left on, the collector would run a young collection every 700 of them and then full ones as
/// the batch grows, walking the whole batch again and again (half the cost of a 50 000-record batch here). Held
/// off, it runs once, at the first allocation after the batch, over all of it. Nothing else runs meanwhile: the
/// batch is built holding the GIL. Dropped (re-enabled, if it was on) on every way out, errors included.
struct CollectorPaused {
    was_enabled: bool,
}

impl CollectorPaused {
    fn new() -> Self {
        // SAFETY: called holding the GIL (decode_many has `py`); returns whether the collector was enabled.
        Self {
            was_enabled: unsafe { ffi::PyGC_Disable() } != 0,
        }
    }
}

impl Drop for CollectorPaused {
    fn drop(&mut self) {
        if self.was_enabled {
            // SAFETY: still holding the GIL, in the call that disabled it.
            unsafe { ffi::PyGC_Enable() };
        }
    }
}

/// A record type's decoding plan, compiled once: `decode_many` turns `count` records of `size` bytes each, back to
/// back, into a list of records.
#[pyclass(module = "pyaya._native", frozen)]
pub struct RecordPlan {
    plan: Plan,
    /// How many memo slots the plan's leaves use (see `Op::Memo`).
    memos: usize,
}

#[pyaya_guard::guard(Map)]
#[pymethods]
impl RecordPlan {
    #[new]
    fn new(spec: &Bound<'_, PyAny>) -> PyResult<Self> {
        let spec = spec.cast::<PyTuple>().map_err(|_| bad("not a tuple"))?;
        let kind: String = spec.get_item(0)?.extract()?;
        if kind != "record" {
            return Err(bad("the top is not a record"));
        }
        let mut memos = 0;
        let plan = Plan::parse(spec, 0, &mut memos)?;
        Ok(Self { plan, memos })
    }

    /// The record's size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.plan.size
    }

    /// The first `count` records of `data` (records of `size` bytes back to back), decoded.
    fn decode_many<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        count: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let size = self.plan.size;
        if count.checked_mul(size).is_none_or(|need| need > data.len()) {
            return Err(bad(&format!(
                "{count} records of {size} bytes need more than {} bytes",
                data.len()
            )));
        }
        let _paused = CollectorPaused::new();
        let mut records = Vec::with_capacity(count);
        let mut memos: Vec<Memo> = (0..self.memos).map(|_| Memo::default()).collect();
        for index in 0..count {
            records.push(self.plan.read(py, data, index * size, &mut memos)?);
        }
        PyList::new(py, records)
    }
}
