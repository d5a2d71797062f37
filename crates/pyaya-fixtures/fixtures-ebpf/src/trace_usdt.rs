//! A USDT program (a uprobe attached with `attach_usdt`): each hit sends the probe's argument count, every
//! argument `pyaya_usdt::usdt_arg` reads (bit `n` of `read` set when argument `n` was read) and the first two
//! arguments read as strings, through a ring buffer.
#![no_std]
#![no_main]

use aya_ebpf::{
    btf_maps::RingBuf,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user_str_bytes},
    macros::{btf_map, uprobe},
    programs::ProbeContext,
};
use pyaya_usdt::{usdt_arg, usdt_arg_count, MAX_ARGS};

const TEXT_LEN: usize = 64;

#[repr(C)]
struct Hit {
    tgid: u32,
    /// `usdt_arg_count`, or -1 when the program has no spec (attached without `attach_usdt`).
    count: i32,
    /// Bit `n`: argument `n` was read (bit 12: reading past the last argument failed, as it must).
    read: u32,
    _pad: u32,
    args: [i64; MAX_ARGS],
    text0: [u8; TEXT_LEN],
    text1: [u8; TEXT_LEN],
}

/// Records typed by the map itself: its BTF definition names `Hit`.
#[btf_map]
static HITS: RingBuf<Hit, { 256 * 1024 }> = RingBuf::new();

#[uprobe]
pub fn trace_usdt_hit(ctx: ProbeContext) -> u32 {
    let Some(mut entry) = HITS.reserve(0) else {
        return 0;
    };
    let hit = entry.as_mut_ptr();
    // SAFETY: `hit` points at ring buffer memory reserved for one Hit; every field is written before submit.
    unsafe {
        (*hit).tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        (*hit).count = usdt_arg_count(&ctx).map_or(-1, |count| count as i32);
        (*hit).read = 0;
        (*hit)._pad = 0;
        (*hit).text0 = [0; TEXT_LEN];
        (*hit).text1 = [0; TEXT_LEN];
        for n in 0..MAX_ARGS {
            (*hit).args[n] = 0;
            if let Ok(value) = usdt_arg(&ctx, n) {
                (*hit).args[n] = value;
                (*hit).read |= 1 << n;
            }
        }
        if usdt_arg(&ctx, MAX_ARGS).is_err() {
            (*hit).read |= 1 << MAX_ARGS;
        }
        // Not every argument is a pointer: reading a number as a string just fails and leaves the text empty.
        let _ = bpf_probe_read_user_str_bytes((*hit).args[0] as *const u8, &mut (*hit).text0);
        let _ = bpf_probe_read_user_str_bytes((*hit).args[1] as *const u8, &mut (*hit).text1);
    }
    entry.submit(0);
    0
}

/// The license the kernel reads before it lets a program call GPL-only helpers (`bpf_probe_read_*`,
/// `bpf_get_stackid`, ...). aya assumes GPL where an object has none; libbpf and cilium/ebpf do not.
#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
