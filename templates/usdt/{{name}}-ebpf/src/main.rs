//! Kernel side of {{name}}: a uprobe program that user space attaches to every location of the USDT probe
//! `{{usdt_probe|text}}` of `{{uprobe_target|text}}`. Each hit reads the probe's arguments with `pyaya_usdt::usdt_arg`, tries
//! the first three as strings, and sends one `ProbeHit` through a ring buffer.
#![no_std]
#![no_main]

use aya_ebpf::{
    btf_maps,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_user_str_bytes},
    macros::{btf_map, uprobe},
    programs::ProbeContext,
};
use pyaya_usdt::{usdt_arg, usdt_arg_count};
use {{crate_name}}_common::{ProbeHit, ARGS, TEXT_LEN};

/// One event per hit.
/// (A `#[btf_map]` ring buffer names its record type in the object's BTF: user space decodes `ProbeHit`s without
/// declaring the struct again.)
#[btf_map]
static EVENTS: btf_maps::RingBuf<ProbeHit, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Hits that found the ring buffer full (user space fell behind): reported when the run ends, never dropped silently.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

#[uprobe]
pub fn {{crate_name}}(ctx: ProbeContext) -> u32 {
    let Some(mut entry) = EVENTS.reserve(0) else {
        if let Some(lost) = EVENTS_LOST.get_ptr_mut(0) {
            // SAFETY: a per-CPU slot, only touched by this CPU while the program runs.
            unsafe { *lost += 1 };
        }
        return 0;
    };
    let hit = entry.as_mut_ptr();
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: `hit` points at ring buffer memory reserved for one ProbeHit; every field is written before submit.
    unsafe {
        (*hit).pid = (pid_tgid >> 32) as u32;
        (*hit).tid = pid_tgid as u32;
        (*hit).count = usdt_arg_count(&ctx).map_or(0, |count| count as u32);
        (*hit).read = 0;
        (*hit).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        for n in 0..ARGS {
            (*hit).args[n] = 0;
            if let Ok(value) = usdt_arg(&ctx, n) {
                (*hit).args[n] = value;
                (*hit).read |= 1 << n;
            }
        }
        (*hit).text0 = [0; TEXT_LEN];
        (*hit).text1 = [0; TEXT_LEN];
        (*hit).text2 = [0; TEXT_LEN];
        // Not every argument is a pointer: reading a number as a string fails and leaves the text empty.
        if (*hit).read & 1 != 0 {
            let _ = bpf_probe_read_user_str_bytes((*hit).args[0] as *const u8, &mut (*hit).text0);
        }
        if (*hit).read & 2 != 0 {
            let _ = bpf_probe_read_user_str_bytes((*hit).args[1] as *const u8, &mut (*hit).text1);
        }
        if (*hit).read & 4 != 0 {
            let _ = bpf_probe_read_user_str_bytes((*hit).args[2] as *const u8, &mut (*hit).text2);
        }
    }
    entry.submit(0);
    0
}

/// The license the kernel reads before it lets the program call GPL-only helpers (`bpf_probe_read_*`,
/// `bpf_get_current_task`, ...). aya assumes GPL where an object has none; libbpf and cilium/ebpf do not.
#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
