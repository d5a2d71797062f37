//! `Program.test_run`: runs a loaded program once (or `repeat` times) on data built in Python through the kernel's
//! `BPF_PROG_TEST_RUN`, via aya's `TestRun`, without attaching it anywhere.

use aya::programs::{Program as AyaProgram, RawTracePointRunOptions, TestRun as _, TestRunOptions};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::ebpf::Program;
use crate::errors::{Deferred, Kind};
use crate::names::program_kind;

/// Output room for packet programs when the caller gives no size: XDP may grow a packet by up to a page.
const DEFAULT_EXTRA_OUTPUT: usize = 4096;
/// The kernel passes at most this many `u64` arguments to a raw tracepoint test run.
const RAW_TRACEPOINT_MAX_ARGS: usize = 12;
const TESTABLE: &str =
    "Xdp, SchedClassifier, SocketFilter, CgroupSkb, FlowDissector and RawTracePoint";

/// What a test run gave back: return value, output data, output context, duration in nanoseconds.
type Outcome = (u32, Vec<u8>, Vec<u8>, u64);

fn packet_run(
    program: &impl for<'a> aya::programs::TestRun<
        Opts<'a> = TestRunOptions<'a>,
        Result = aya::programs::TestRunResult,
    >,
    data: &[u8],
    ctx: Option<&[u8]>,
    repeat: u32,
    data_out_size: usize,
    context: &str,
) -> Result<Outcome, Deferred> {
    let mut data_out = vec![0u8; data_out_size];
    let mut ctx_out = vec![0u8; ctx.map_or(0, <[u8]>::len)];
    let options = TestRunOptions {
        data_in: (!data.is_empty()).then_some(data),
        data_out: (data_out_size > 0).then_some(data_out.as_mut_slice()),
        ctx_in: ctx,
        ctx_out: ctx.is_some().then_some(ctx_out.as_mut_slice()),
        repeat,
        ..TestRunOptions::default()
    };
    let result = program
        .test_run(options)
        .map_err(|err| Deferred::Program(context.to_owned(), Box::new(err)))?;
    data_out.truncate(result.data_size_out as usize);
    ctx_out.truncate(result.ctx_size_out as usize);
    Ok((
        result.return_value,
        data_out,
        ctx_out,
        u64::try_from(result.duration.as_nanos()).unwrap_or(u64::MAX),
    ))
}

fn raw_tracepoint_args(ctx: Option<&[u8]>, context: &str) -> Result<[u64; 12], Deferred> {
    let ctx = ctx.unwrap_or_default();
    if ctx.len() % 8 != 0 || ctx.len() > RAW_TRACEPOINT_MAX_ARGS * 8 {
        return Err(Deferred::Plain(
            Kind::Program,
            format!(
                "{context}: a raw tracepoint's ctx is its arguments packed as native-endian u64 values (at most \
                 {RAW_TRACEPOINT_MAX_ARGS}, e.g. struct.pack(\"=2Q\", a, b)), got {} bytes",
                ctx.len()
            ),
        ));
    }
    let mut args = [0u64; RAW_TRACEPOINT_MAX_ARGS];
    for (arg, chunk) in args.iter_mut().zip(ctx.chunks_exact(8)) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        *arg = u64::from_ne_bytes(bytes);
    }
    Ok(args)
}

#[pyaya_guard::guard(Program)]
#[pymethods]
impl Program {
    /// Runs the loaded program through `BPF_PROG_TEST_RUN` on `data` (a packet, starting at its Ethernet
    /// header) and `ctx` (the program's context, e.g. `__sk_buff`, or a raw tracepoint's packed u64 arguments),
    /// `repeat` times. Returns `(return_value, data_out, ctx_out, duration_ns)`.
    #[pyo3(signature = (data, ctx = None, repeat = 1, data_out_size = None))]
    fn test_run<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        ctx: Option<&[u8]>,
        repeat: u32,
        data_out_size: Option<usize>,
    ) -> PyResult<(u32, Bound<'py, PyBytes>, Bound<'py, PyBytes>, u64)> {
        if repeat == 0 {
            return Err(crate::errors::new_err(
                Kind::InvalidArgument,
                "repeat = 0 is out of range: give 1 to 4294967295",
            ));
        }
        let context = format!("test-running program {:?}", self.name_str());
        let data_out_size = data_out_size.unwrap_or(data.len() + DEFAULT_EXTRA_OUTPUT);
        let (return_value, data_out, ctx_out, duration) = py.detach(|| {
            self.with_program(|program| match program {
                AyaProgram::Xdp(p) => packet_run(p, data, ctx, repeat, data_out_size, &context),
                AyaProgram::SchedClassifier(p) => {
                    packet_run(p, data, ctx, repeat, data_out_size, &context)
                }
                AyaProgram::SocketFilter(p) => {
                    packet_run(p, data, ctx, repeat, data_out_size, &context)
                }
                AyaProgram::ReusePortSocketFilter(p) => {
                    packet_run(p, data, ctx, repeat, data_out_size, &context)
                }
                AyaProgram::CgroupSkb(p) => {
                    packet_run(p, data, ctx, repeat, data_out_size, &context)
                }
                AyaProgram::FlowDissector(p) => {
                    packet_run(p, data, ctx, repeat, data_out_size, &context)
                }
                AyaProgram::RawTracePoint(p) => {
                    if !data.is_empty() || repeat != 1 {
                        return Err(Deferred::Plain(
                            Kind::Program,
                            format!(
                                "{context}: a raw tracepoint test run takes only ctx (its arguments); data and \
                                 repeat are not allowed by the kernel"
                            ),
                        ));
                    }
                    let options = RawTracePointRunOptions {
                        args: raw_tracepoint_args(ctx, &context)?,
                        cpu: None,
                    };
                    let result = p
                        .test_run(options)
                        .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                    // The kernel neither copies data out nor times raw tracepoint runs.
                    Ok((result.return_value, Vec::new(), Vec::new(), 0))
                }
                other => Err(Deferred::Plain(
                    Kind::Unsupported,
                    format!(
                        "{context}: test_run is not available for {} programs; it works for {TESTABLE} programs",
                        program_kind(other)
                    ),
                )),
            })
        })?;
        Ok((
            return_value,
            PyBytes::new(py, &data_out),
            PyBytes::new(py, &ctx_out),
            duration,
        ))
    }
}
