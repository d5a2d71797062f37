"""A project's maps as Prometheus metrics, served at ``/metrics`` by prometheus_client.

``[metrics.MAP]`` tables in ``pyaya.toml`` say which maps are metrics and how (see :class:`pyaya.project.MetricSpec`):

* ``counter`` / ``gauge``: one sample per entry of a hash map (or per non-zero slot of an array), labelled by the
  key: a struct key gives one label per field (names from the object's BTF, or ``labels``), a plain key one label
  (``labels = ["uid"]``, default ``key``). Per-CPU values are summed. A struct value gives one metric per integer
  field (``<name>_<field>``).
* ``log2_histogram`` / ``linear_histogram``: a map from slot to count (what :meth:`pyaya.runtime.Session.show_histogram`
  prints) as a Prometheus histogram: slot n of a log2 histogram holds values up to ``2**n - 1`` (its ``le``), slot n
  of a linear one the value n. A linear histogram's ``_sum`` is exact; a log2 histogram has no ``_sum`` (the values
  inside a bucket are not known).

With ``[metrics] program_stats = true`` (or ``kernel.bpf_stats_enabled = 1``), each program's run count and run time
are served too (``<prefix>_program_runs_total``, ``<prefix>_program_run_seconds_total``).

Every value is read from the kernel when Prometheus scrapes, in the HTTP server's thread: no copy goes stale.

prometheus_client is an optional dependency (``pip install 'pyaya[metrics]'``): most runs of a tool never serve
metrics, and ``pyaya run`` should not pay for importing it.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from pyaya.errors import MetricsError, PyayaError
from pyaya.project import MetricSpec

__all__ = ["MapCollector", "MetricsServer", "parse_address", "serve"]

_NAME = re.compile(r"[^a-zA-Z0-9_]")
_STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


def _prometheus() -> Any:
    try:
        return importlib.import_module("prometheus_client")
    except ImportError:
        raise MetricsError(
            "serving metrics needs prometheus_client, which is not installed: pip install 'pyaya[metrics]' "
            "(or pip install prometheus-client)"
        ) from None


def parse_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9435"`` -> ``("127.0.0.1", 9435)``; ``"[::1]:9435"`` and ``":9435"`` (every address) work too,
    and port 0 takes a free port (:attr:`MetricsServer.url` says which)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise MetricsError(f"--metrics {address!r} is not HOST:PORT (e.g. 127.0.0.1:9435)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def metric_name(*parts: str) -> str:
    """A Prometheus metric name of ``parts`` joined by ``_`` (other characters replaced by ``_``)."""
    name = "_".join(_NAME.sub("_", part).strip("_") for part in parts if part)
    return f"_{name}" if name[:1].isdigit() else name


class _Program(Protocol):
    @property
    def name(self) -> str: ...

    def info(self) -> Mapping[str, object]: ...


class _Source(Protocol):
    """What :class:`MapCollector` reads: an :class:`~pyaya.Ebpf` or the pinned maps of a session."""

    @property
    def maps(self) -> Mapping[str, Any]: ...


def _label_value(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        text = raw.rstrip(b"\0")
        if text and text.isascii() and text.decode().isprintable():
            return text.decode()
        return raw.hex()
    return str(int(value)) if hasattr(value, "__index__") and not isinstance(value, bool) else str(value)


def _number(value: object) -> float | None:
    """A map value as one number: ints, per-CPU values (summed); None for anything else."""
    total = getattr(value, "sum", None)
    if callable(total) and not isinstance(value, tuple):
        value = total()
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _fields(value: object) -> dict[str, object] | None:
    asdict = getattr(value, "asdict", None)
    if callable(asdict):
        fields = asdict()
        return dict(fields) if isinstance(fields, Mapping) else None
    return None


def _summed_fields(value: object) -> dict[str, float] | None:
    """A struct value's integer fields; per-CPU struct values summed field by field."""
    items = list(value) if isinstance(value, list) else [value]
    totals: dict[str, float] = {}
    for item in items:
        fields = _fields(item)
        if fields is None:
            return None
        for key, field in fields.items():
            if isinstance(field, (int, float)) and not isinstance(field, bool):
                totals[key] = totals.get(key, 0.0) + float(field)
    return totals


class MapCollector:
    """A prometheus_client collector: the ``[metrics]`` maps of ``source``, read at every scrape."""

    def __init__(
        self,
        source: _Source,
        specs: Mapping[str, MetricSpec],
        *,
        prefix: str,
        programs: Callable[[], Iterable[_Program]] | None = None,
        program_stats: bool = False,
    ) -> None:
        missing = sorted(name for name in specs if name not in source.maps)
        if missing:
            raise MetricsError(
                f"[metrics.{missing[0]}] names no map of the object (its maps: {', '.join(sorted(source.maps))})"
            )
        self._source = source
        self._specs = dict(specs)
        self._prefix = metric_name(prefix)
        self._programs = programs
        self._program_stats = program_stats
        self._prometheus = _prometheus()
        self._core = importlib.import_module("prometheus_client.core")

    def describe(self) -> list[Any]:
        """Nothing to describe ahead: the maps are read when scraped (prometheus_client then skips a first
        collect at registration)."""
        return []

    def collect(self) -> Iterator[Any]:
        """One metric family per ``[metrics]`` map (several for struct values), plus program statistics."""
        for map_name, spec in self._specs.items():
            try:
                yield from self._families(self._source.maps[map_name], spec)
            except PyayaError as error:
                # One unreadable map must not hide the others; Prometheus sees the gap and the log says why.
                import logging  # noqa: PLC0415

                logging.getLogger("pyaya.metrics").warning("cannot read map %s: %s", map_name, error)
        if self._programs is not None and (self._program_stats or _stats_enabled()):
            yield from self._program_families()

    def _name(self, spec: MetricSpec) -> str:
        return metric_name(self._prefix, spec.name or spec.map.lower())

    def _families(self, map: Any, spec: MetricSpec) -> Iterator[Any]:
        if spec.type in ("log2_histogram", "linear_histogram"):
            yield self._histogram(map, spec)
            return
        items = map.items()
        is_array = isinstance(map, self._array_types())
        labelled: list[tuple[list[str], object]] = []
        names: list[str] | None = None
        for key, value in items:
            key_names, key_values = self._key_labels(key, spec)
            if names is None:
                names = key_names
            labelled.append((key_values, value))
        names = names or list(spec.labels or ["key"])
        family_type = self._core.CounterMetricFamily if spec.type == "counter" else self._core.GaugeMetricFamily
        help_text = spec.help or f"map {spec.map}"
        plain = family_type(self._name(spec), help_text, labels=names)
        per_field: dict[str, Any] = {}
        for values, value in labelled:
            number = _number(value)
            if number is not None:
                if not (is_array and number == 0):
                    plain.add_metric(values, number)
                continue
            fields = _summed_fields(value)
            if fields is None:
                raise MetricsError(f"map {spec.map}: a {type(value).__name__} value is not a number or a struct")
            for field, amount in fields.items():
                family = per_field.get(field)
                if family is None:
                    name = metric_name(self._name(spec), field)
                    family = per_field[field] = family_type(name, f"{help_text} ({field})", labels=names)
                if not (is_array and amount == 0):
                    family.add_metric(values, amount)
        if per_field:
            yield from per_field.values()
        else:
            yield plain

    def _array_types(self) -> tuple[type, ...]:
        from pyaya.maps import Array  # noqa: PLC0415

        return (Array,)

    def _key_labels(self, key: object, spec: MetricSpec) -> tuple[list[str], list[str]]:
        fields = _fields(key)
        if fields is not None:
            # Explicit padding (`padding: [u8; 3]`, kept so no byte is left uninitialised) says nothing.
            fields = {name: value for name, value in fields.items() if not name.startswith(("padding", "_"))}
            names = list(spec.labels) if spec.labels else list(fields)
            if len(names) != len(fields):
                raise MetricsError(
                    f"[metrics.{spec.map}] labels names {len(names)} labels but the key has {len(fields)} fields "
                    f"({', '.join(fields)})"
                )
            return [metric_name(n) for n in names], [_label_value(v) for v in fields.values()]
        if spec.labels and len(spec.labels) != 1:
            raise MetricsError(f"[metrics.{spec.map}] labels: the key is one value, so give one label name")
        return [metric_name(spec.labels[0]) if spec.labels else "key"], [_label_value(key)]

    def _histogram(self, map: Any, spec: MetricSpec) -> Any:
        counts: dict[int, float] = {}
        for key, value in map.items():
            number = _number(value)
            if number is None:
                raise MetricsError(f"map {spec.map}: histogram values must be counts, not {type(value).__name__}")
            slot = int(key)
            counts[slot] = counts.get(slot, 0.0) + number
        last = max((slot for slot, count in counts.items() if count), default=-1)
        buckets: list[tuple[str, float]] = []
        running = 0.0
        log2 = spec.type == "log2_histogram"
        for slot in range(last + 1):
            running += counts.get(slot, 0.0)
            bound = (1 << slot) - 1 if log2 else slot
            buckets.append((self._go_float(bound), running))
        buckets.append(("+Inf", running))
        total = None if log2 else sum(slot * count for slot, count in counts.items())
        family = self._core.HistogramMetricFamily(self._name(spec), spec.help or f"map {spec.map}", labels=[])
        family.add_metric([], buckets, total)
        if total is None:
            # prometheus_client leaves `_count` out along with `_sum`; the count is known, so serve it.
            sample = importlib.import_module("prometheus_client.samples").Sample
            family.samples.append(sample(f"{family.name}_count", {}, running, None))
        return family

    def _go_float(self, bound: int) -> str:
        """A bucket bound as Prometheus writes ``le`` (``"1.0"``, ``"1.023e+03"``), so queries match its buckets."""
        text: str = importlib.import_module("prometheus_client.utils").floatToGoString(float(bound))
        return text

    def _program_families(self) -> Iterator[Any]:
        assert self._programs is not None
        runs = self._core.CounterMetricFamily(
            metric_name(self._prefix, "program_runs"), "Times each BPF program ran (BPF stats)", labels=["program"]
        )
        seconds = self._core.CounterMetricFamily(
            metric_name(self._prefix, "program_run_seconds"),
            "Time each BPF program ran, in seconds (BPF stats)",
            labels=["program"],
        )
        for program in self._programs():
            try:
                info = program.info()
            except PyayaError:
                continue  # not loaded (yet): nothing to count
            runs.add_metric([program.name], _counter(info.get("run_count")))
            seconds.add_metric([program.name], _counter(info.get("run_time_ns")) / 1e9)
        yield runs
        yield seconds


def _counter(value: object) -> float:
    """A counter of a program's info as a float; 0 where the kernel reported none."""
    return float(value) if isinstance(value, int | float) else 0.0


def _stats_enabled() -> bool:
    try:
        return _STATS_SYSCTL.read_text().strip() == "1"
    except OSError:
        return False


class MetricsServer:
    """An HTTP server answering ``/metrics`` from its own registry, in a daemon thread; a context manager."""

    def __init__(self, collector: MapCollector, address: str) -> None:
        prometheus = _prometheus()
        self.host, self.port = parse_address(address)
        self.registry = prometheus.CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        try:
            started = prometheus.start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as error:
            raise MetricsError(f"cannot serve metrics on {address}: {error.strerror or error}") from None
        self._server, self._thread = started
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving (waits for a scrape in progress)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            thread: threading.Thread = self._thread
            thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    source: _Source,
    specs: Mapping[str, MetricSpec],
    address: str,
    *,
    prefix: str,
    programs: Callable[[], Iterable[_Program]] | None = None,
    program_stats: bool = False,
) -> MetricsServer:
    """Serve ``source``'s maps named in ``specs`` at ``http://ADDRESS/metrics`` until the server is closed."""
    collector = MapCollector(source, specs, prefix=prefix, programs=programs, program_stats=program_stats)
    return MetricsServer(collector, address)
