"""pyaya: Rust eBPF from Python.

Scaffold, build, load and run aya-ebpf programs; the loader is aya itself, exposed through a native module.

The public names are imported on first use (``pyaya.Ebpf``, ``from pyaya import HashMap``), so ``import pyaya``
alone is cheap. A process that drops privileges or changes root after ``import pyaya`` must touch the names it
needs first (``from pyaya import Ebpf``), while it can still read pyaya's files.
"""

from __future__ import annotations

# Not typing's: importing typing would cost more than the rest of `import pyaya` (see pyaya._typing).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyaya import usdt
    from pyaya.btf import Btf
    from pyaya.errors import (
        BuildError,
        ClosedError,
        InvalidArgumentError,
        InvalidArgumentTypeError,
        InvalidIndexError,
        KernelFieldError,
        LoadError,
        MapError,
        NotFoundError,
        ObjectError,
        PermissionDeniedError,
        ProgramError,
        ProjectError,
        PyayaError,
        RecordError,
        ScaffoldError,
        ToolchainError,
        UnsupportedError,
        VerifierError,
        VmError,
    )
    from pyaya.loader import Ebpf, loaded_links, loaded_maps, loaded_programs
    from pyaya.maps import Array, HashMap, Map, RingBuf
    from pyaya.programs import (
        SK_DROP,
        SK_PASS,
        TC_ACT_OK,
        TC_ACT_PIPE,
        TC_ACT_RECLASSIFY,
        TC_ACT_REDIRECT,
        TC_ACT_SHOT,
        TC_ACT_STOLEN,
        TC_ACT_UNSPEC,
        XDP_ABORTED,
        XDP_DROP,
        XDP_PASS,
        XDP_REDIRECT,
        XDP_TX,
        BtfTracePoint,
        CgroupDevice,
        CgroupSkb,
        CgroupSock,
        CgroupSockAddr,
        CgroupSockopt,
        CgroupSysctl,
        Extension,
        FEntry,
        FExit,
        FlowDissector,
        Iter,
        IterLink,
        KProbe,
        KProbeMulti,
        Link,
        Lsm,
        LsmCgroup,
        MultiLink,
        PerfEvent,
        PerfEventKind,
        Program,
        RawTracePoint,
        SchedClassifier,
        SkLookup,
        SkMsg,
        SkReuseport,
        SkSkb,
        SocketFilter,
        SockOps,
        TestRunResult,
        TracePoint,
        UProbe,
        UProbeMulti,
        Xdp,
        enable_stats,
        tcx_programs,
    )

    __version__: str

__all__ = [
    "SK_DROP",
    "SK_PASS",
    "TC_ACT_OK",
    "TC_ACT_PIPE",
    "TC_ACT_RECLASSIFY",
    "TC_ACT_REDIRECT",
    "TC_ACT_SHOT",
    "TC_ACT_STOLEN",
    "TC_ACT_UNSPEC",
    "XDP_ABORTED",
    "XDP_DROP",
    "XDP_PASS",
    "XDP_REDIRECT",
    "XDP_TX",
    "Array",
    "Btf",
    "BtfTracePoint",
    "BuildError",
    "CgroupDevice",
    "CgroupSkb",
    "CgroupSock",
    "CgroupSockAddr",
    "CgroupSockopt",
    "CgroupSysctl",
    "ClosedError",
    "Ebpf",
    "Extension",
    "FEntry",
    "FExit",
    "FlowDissector",
    "HashMap",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidIndexError",
    "Iter",
    "IterLink",
    "KProbe",
    "KProbeMulti",
    "KernelFieldError",
    "Link",
    "LoadError",
    "Lsm",
    "LsmCgroup",
    "Map",
    "MapError",
    "MultiLink",
    "NotFoundError",
    "ObjectError",
    "PerfEvent",
    "PerfEventKind",
    "PermissionDeniedError",
    "Program",
    "ProgramError",
    "ProjectError",
    "PyayaError",
    "RawTracePoint",
    "RecordError",
    "RingBuf",
    "ScaffoldError",
    "SchedClassifier",
    "SkLookup",
    "SkMsg",
    "SkReuseport",
    "SkSkb",
    "SockOps",
    "SocketFilter",
    "TestRunResult",
    "ToolchainError",
    "TracePoint",
    "UProbe",
    "UProbeMulti",
    "UnsupportedError",
    "VerifierError",
    "VmError",
    "Xdp",
    "__version__",
    "enable_stats",
    "loaded_links",
    "loaded_maps",
    "loaded_programs",
    "tcx_programs",
    "usdt",
]

# Each public name and the module defining it: they are imported on first use (PEP 562), so `import pyaya` (and so
# every `pyaya` command, and `pyaya.errors` alone) does not pay for the loader, the maps and asyncio.
_LAZY: dict[str, str] = {
    "BuildError": "pyaya.errors",
    "ClosedError": "pyaya.errors",
    "InvalidArgumentError": "pyaya.errors",
    "InvalidArgumentTypeError": "pyaya.errors",
    "InvalidIndexError": "pyaya.errors",
    "KernelFieldError": "pyaya.errors",
    "LoadError": "pyaya.errors",
    "MapError": "pyaya.errors",
    "NotFoundError": "pyaya.errors",
    "ObjectError": "pyaya.errors",
    "PermissionDeniedError": "pyaya.errors",
    "ProgramError": "pyaya.errors",
    "ProjectError": "pyaya.errors",
    "PyayaError": "pyaya.errors",
    "ScaffoldError": "pyaya.errors",
    "ToolchainError": "pyaya.errors",
    "UnsupportedError": "pyaya.errors",
    "RecordError": "pyaya.errors",
    "VerifierError": "pyaya.errors",
    "VmError": "pyaya.errors",
    "Btf": "pyaya.btf",
    "Ebpf": "pyaya.loader",
    "loaded_links": "pyaya.loader",
    "loaded_maps": "pyaya.loader",
    "loaded_programs": "pyaya.loader",
    "Array": "pyaya.maps",
    "HashMap": "pyaya.maps",
    "Map": "pyaya.maps",
    "RingBuf": "pyaya.maps",
    "SK_DROP": "pyaya.programs",
    "tcx_programs": "pyaya.programs",
    "SK_PASS": "pyaya.programs",
    "TC_ACT_OK": "pyaya.programs",
    "TC_ACT_PIPE": "pyaya.programs",
    "TC_ACT_RECLASSIFY": "pyaya.programs",
    "TC_ACT_REDIRECT": "pyaya.programs",
    "TC_ACT_SHOT": "pyaya.programs",
    "TC_ACT_STOLEN": "pyaya.programs",
    "TC_ACT_UNSPEC": "pyaya.programs",
    "XDP_ABORTED": "pyaya.programs",
    "XDP_DROP": "pyaya.programs",
    "XDP_PASS": "pyaya.programs",
    "XDP_REDIRECT": "pyaya.programs",
    "XDP_TX": "pyaya.programs",
    "BtfTracePoint": "pyaya.programs",
    "CgroupDevice": "pyaya.programs",
    "CgroupSkb": "pyaya.programs",
    "CgroupSock": "pyaya.programs",
    "CgroupSockAddr": "pyaya.programs",
    "CgroupSockopt": "pyaya.programs",
    "CgroupSysctl": "pyaya.programs",
    "Extension": "pyaya.programs",
    "FEntry": "pyaya.programs",
    "FExit": "pyaya.programs",
    "FlowDissector": "pyaya.programs",
    "Iter": "pyaya.programs",
    "IterLink": "pyaya.programs",
    "KProbe": "pyaya.programs",
    "KProbeMulti": "pyaya.programs",
    "Link": "pyaya.programs",
    "Lsm": "pyaya.programs",
    "LsmCgroup": "pyaya.programs",
    "MultiLink": "pyaya.programs",
    "PerfEvent": "pyaya.programs",
    "PerfEventKind": "pyaya.programs",
    "Program": "pyaya.programs",
    "RawTracePoint": "pyaya.programs",
    "SchedClassifier": "pyaya.programs",
    "SkLookup": "pyaya.programs",
    "SkMsg": "pyaya.programs",
    "SkReuseport": "pyaya.programs",
    "SkSkb": "pyaya.programs",
    "SocketFilter": "pyaya.programs",
    "SockOps": "pyaya.programs",
    "TestRunResult": "pyaya.programs",
    "TracePoint": "pyaya.programs",
    "UProbe": "pyaya.programs",
    "UProbeMulti": "pyaya.programs",
    "Xdp": "pyaya.programs",
    "enable_stats": "pyaya.programs",
}

#: Submodules reachable as attributes of `pyaya` (imported on first use too).
_SUBMODULES = frozenset({"usdt"})


if not TYPE_CHECKING:  # mypy sees the imports above, and so rejects names pyaya does not have

    def __getattr__(name: str) -> object:
        module_name = _LAZY.get(name)
        if module_name is not None:
            # __import__ rather than importlib.import_module: the importlib package is not loaded at start-up.
            value = getattr(__import__(module_name, fromlist=[name]), name)
            globals()[name] = value  # later lookups skip this function
            return value
        if name in _SUBMODULES:  # `pyaya.usdt.probes(...)` without importing pyaya.usdt first
            return __import__(f"pyaya.{name}", fromlist=["__name__"])
        # The crate's version, which maturin also makes the distribution's (pyproject: dynamic = ["version"]):
        # compiled into the native module, so no importlib.metadata (~15-30 ms) and no copy typed by hand.
        if name == "__version__":
            from pyaya._native import VERSION  # noqa: PLC0415

            return VERSION
        raise AttributeError(f"module 'pyaya' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
