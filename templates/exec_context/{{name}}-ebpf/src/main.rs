//! Kernel side of {{name}}: a tracepoint on `sched/sched_process_exec` that sends one `ExecEvent` per exec through a
//! ring buffer, with where the new program runs: its ancestry, its cgroup and its UTS namespace's hostname, and
//! counts execs per cgroup.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel_str_bytes,
        generated::bpf_get_current_cgroup_id,
    },
    macros::{btf_map, tracepoint},
    programs::TracePointContext,
    EbpfContext,
};
use pyaya_fields::kernel_field;
use {{crate_name}}_common::{CgroupName, ExecEvent, CGROUP_LEN, COMM_LEN, NODENAME_LEN};

/// Exec events for user space. A `#[btf_map]` ring buffer names its record type in the object's BTF, so user
/// space decodes `ExecEvent`s without declaring the struct again. 4 MiB hold about 7 500 events (536 bytes each
/// with the ring's header): seconds of a busy exec load while user space is kept off the CPU.
#[btf_map]
static EVENTS: btf_maps::RingBuf<ExecEvent, { 4 * 1024 * 1024 }> = btf_maps::RingBuf::new();

/// Exec events `EVENTS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["EVENTS"].lost` is their sum.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// Number of execs per cgroup name, counted before the event is reserved: every exec is in here, shown or lost.
/// (Keyed by name, as it is shown: cgroups of the same name in different places of the tree add up.)
#[btf_map]
static CGROUP_EXECS: btf_maps::HashMap<CgroupName, u64, 4096> = btf_maps::HashMap::new();

/// Set by user space before loading (`-p PID`): report only the execs of this process and of its children. Zero
/// reports every process.
#[no_mangle]
static TARGET_TGID: u32 = 0;

/// Set by user space before loading (`--cgroup`): report only the execs in the cgroup of this id (the inode number
/// of its folder under the cgroup v2 mount). Zero reports every cgroup.
#[no_mangle]
static TARGET_CGROUP_ID: u64 = 0;

// Rust eBPF has no CO-RE: the program declares each kernel field it reads by its path, and pyaya's loader fills in
// where the running kernel keeps it (from /sys/kernel/btf/vmlinux) before the kernel sees the program. A path
// follows at most three pointers (`->`).
kernel_field!(PARENT_TGID: i32 = "task_struct.real_parent->tgid");
kernel_field!(PARENT_COMM: [u8; COMM_LEN] = "task_struct.real_parent->comm");
kernel_field!(GRANDPARENT_TGID: i32 = "task_struct.real_parent->real_parent->tgid");
kernel_field!(GRANDPARENT_COMM: [u8; COMM_LEN] = "task_struct.real_parent->real_parent->comm");
// The real uid, as `bpf_get_current_uid_gid` reads it (`cred->uid`, a `kuid_t`).
kernel_field!(UID: u32 = "task_struct.cred->uid.val");
// Optional: a kernel built without cgroups or UTS namespaces lacks them, and the program still loads (an empty
// cgroup name and hostname then).
// The name of the task's cgroup in the default hierarchy: a `const char *` into its kernfs node (three pointers,
// the most one path may follow); the string it points at is read in a second step.
kernel_field!(optional CGROUP_NAME: *const u8 = "task_struct.cgroups->dfl_cgrp->kn->name");
// The hostname of the task's UTS namespace: the array itself, read in one copy.
kernel_field!(optional NODENAME: [u8; NODENAME_LEN] = "task_struct.nsproxy->uts_ns->name.nodename");

/// Offset of `__data_loc char[] filename` in the `sched_process_exec` record (see the tracepoint's `format` file):
/// a u32 whose low 16 bits are the offset of the string in the record.
const FILENAME_FIELD_OFFSET: usize = 8;

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn {{crate_name}}(ctx: TracePointContext) -> u32 {
    // A failed read only loses this event; the program itself must always return 0 for a tracepoint.
    let _ = try_trace_exec(&ctx);
    0
}

fn try_trace_exec(ctx: &TracePointContext) -> Result<(), i64> {
    // SAFETY: a helper without arguments: the address of the current task_struct.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the current task is a live task_struct; every read goes through bpf_probe_read_kernel, so a failed
    // one yields an error, never a fault.
    let ppid = unsafe { PARENT_TGID.read(task) }.map_or(0, |tgid| tgid as u32);
    // SAFETY: volatile reads keep the compiler from folding the loader-patched globals to their initial zeros.
    let (target, target_cgroup) =
        unsafe { (core::ptr::read_volatile(&TARGET_TGID), core::ptr::read_volatile(&TARGET_CGROUP_ID)) };
    if target != 0 && target != pid && target != ppid {
        return Ok(());
    }
    // SAFETY: a helper without arguments: the id of the current task's cgroup in the default hierarchy.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    if target_cgroup != 0 && target_cgroup != cgroup_id {
        return Ok(());
    }
    let mut cgroup: CgroupName = [0; CGROUP_LEN];
    read_cgroup_name(task, &mut cgroup);
    count_exec(&cgroup);

    let Some(mut entry) = EVENTS.reserve(0) else {
        count_lost();
        return Err(-1);
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at ring buffer memory reserved for one ExecEvent; every field is written before submit.
    // The kernel field reads are bpf_probe_read_kernel calls on the current task, as above.
    unsafe {
        (*event).cgroup_id = cgroup_id;
        (*event).pid = pid;
        (*event).ppid = ppid;
        (*event).gppid = GRANDPARENT_TGID.read(task).map_or(0, |tgid| tgid as u32);
        (*event).uid = UID.read(task).unwrap_or(u32::MAX);
        (*event).comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
        (*event).pcomm = PARENT_COMM.read(task).unwrap_or([0; COMM_LEN]);
        (*event).gpcomm = GRANDPARENT_COMM.read(task).unwrap_or([0; COMM_LEN]);
        (*event).cgroup = cgroup;
        (*event).nodename = NODENAME.read(task).unwrap_or([0; NODENAME_LEN]);
        (*event).filename[0] = 0;
        if let Ok(location) = ctx.read_at::<u32>(FILENAME_FIELD_OFFSET) {
            let filename = (ctx.as_ptr() as *const u8).add((location & 0xffff) as usize);
            let _ = bpf_probe_read_kernel_str_bytes(filename, &mut (*event).filename);
        }
    }
    entry.submit(0);
    Ok(())
}

/// Copies the name of the task's default-hierarchy cgroup into `name` (left empty when the kernel has no such
/// field or a read fails); the root cgroup, whose kernfs name is empty, becomes `/`. The second step of the
/// `CGROUP_NAME` chain: the field holds a pointer, the string it points at is read here.
fn read_cgroup_name(task: *const u8, name: &mut CgroupName) {
    // SAFETY: the helpers check the kernel addresses; a failed read yields an error, never a fault.
    unsafe {
        let Ok(text) = CGROUP_NAME.read(task) else {
            return;
        };
        if text.is_null() {
            return;
        }
        match bpf_probe_read_kernel_str_bytes(text, name) {
            Ok(bytes) if bytes.is_empty() => name[0] = b'/',
            Ok(_) => {}
            // A failed read may leave part of a string behind: keep the key all zeros.
            Err(_) => *name = [0; CGROUP_LEN],
        }
    }
}

/// Counts one record `EVENTS` could not take (see `EVENTS_LOST`).
fn count_lost() {
    if let Some(count) = EVENTS_LOST.get_ptr_mut(0) {
        atomic_add(count, 1);
    }
}

fn count_exec(cgroup: &CgroupName) {
    match CGROUP_EXECS.get_ptr_mut(cgroup) {
        Some(count) => atomic_add(count, 1),
        None => {
            // Another CPU may have inserted the same cgroup meanwhile: then BPF_NOEXIST fails and we add to its
            // entry.
            if CGROUP_EXECS.insert(cgroup, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(count) = CGROUP_EXECS.get_ptr_mut(cgroup) {
                    atomic_add(count, 1);
                }
            }
        }
    }
}

/// Adds to a map value with the BPF atomic add instruction, so execs on several CPUs at once are all counted.
/// (The BPF target has no compare-and-swap, so `core::sync::atomic` offers no `fetch_add` there.)
fn atomic_add(value: *mut u64, delta: u64) {
    // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
    unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) delta) };
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
