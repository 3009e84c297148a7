"""Summaries of the measured samples: medians, ratios, targets, and their text forms."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

__all__ = [
    "MiB",
    "Op",
    "Row",
    "headlines",
    "markdown_report",
    "scaling_rows",
    "summarize",
    "target_rows",
    "text_report",
]

MiB = 1 << 20

# Targets from the performance claim, on the big image, file to file.
TARGET_COPY_VS_CP = 0.9
TARGET_VERIFY_VS_SHA256 = 0.8
TARGET_VS_DOCKER_SAVE = 15.0
TARGET_LOAD_VS_SHA256 = 0.7
TARGET_PEAK_RSS = 40 * MiB
TARGET_FLATNESS = 0.10


@dataclass(frozen=True)
class Op:
    """One measured operation; ``key`` identifies it across rounds."""

    image: str  # "big", "small" or "scale"
    tool: str  # "tarexport", "cp", "cat", "python", "docker"
    kind: str  # "save", "load", "cp", "cat", "sha256", "copyfileobj", "docker-save", ...
    store: str = ""  # save: "memory", "oci", "archive"
    sink: str = ""  # save: "file", "null", "pipe"; load: the source, "file" or "pipe"
    verify: Optional[bool] = None
    fsync: Optional[bool] = None  # load: whether the OCI layout store syncs (default: it does)

    @property
    def key(self) -> str:
        verify = "" if self.verify is None else ("verify" if self.verify else "noverify")
        nosync = "nosync" if self.fsync is False else ""
        parts = (self.image, self.kind, self.store, self.sink, verify, nosync)
        return "/".join(part for part in parts if part)

    @property
    def label(self) -> str:
        if self.kind == "save":
            sink = {"file": "file", "null": "/dev/null", "pipe": "pipe"}[self.sink]
            check = "verify" if self.verify else "no verify"
            return f"tarexport save {self.store} -> {sink}, {check}"
        if self.kind == "load":
            sync = ", no fsync" if self.fsync is False else ""
            return f"tarexport load {self.sink} -> oci layout, verify{sync}"
        return {
            "cp": "cp file -> file",
            "cp-sync": "cp file -> file && sync file",
            "cat": "cat file | cat > /dev/null",
            "sha256": "hashlib.sha256 over the file",
            "copyfileobj": "shutil.copyfileobj file -> file",
            "layer-copy": "kernel copy of the layers to their archive offsets",
            "docker-save": "docker save -o",
            "docker-load": "docker load -i",
        }[self.kind]


@dataclass(frozen=True)
class Row:
    """The summary of one operation over its rounds."""

    op: Op
    rounds: int
    median_s: float
    min_s: float
    max_s: float
    bytes: int
    cpu_median: Optional[float]  # user + system seconds; None for docker (the daemon works)
    rss_median: Optional[int]  # None where the work happens elsewhere (the Docker daemon)
    rss_max: Optional[int]
    temp_peak: Optional[int]  # None where it could not be watched
    temp_left: Optional[int]
    samples: tuple[dict[str, Any], ...]
    rss_is_bound: bool = False  # ru_maxrss was the spawner's floor: the real peak is lower

    @property
    def mib_s(self) -> float:
        return self.bytes / MiB / self.median_s if self.median_s > 0 else float("inf")

    def to_json(self, floors: dict[str, Row]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.op.key,
            "label": self.op.label,
            "image": self.op.image,
            "tool": self.op.tool,
            "kind": self.op.kind,
            "store": self.op.store or None,
            "sink": self.op.sink or None,
            "verify": self.op.verify,
            "fsync": self.op.fsync,
            "rounds": self.rounds,
            "bytes": self.bytes,
            "median_s": self.median_s,
            "min_s": self.min_s,
            "max_s": self.max_s,
            "mib_per_s": self.mib_s,
            "cpu_median_s": self.cpu_median,
            "peak_rss_median_bytes": self.rss_median,
            "peak_rss_max_bytes": self.rss_max,
            "temp_peak_bytes": self.temp_peak,
            "temp_left_bytes": self.temp_left,
            "samples": list(self.samples),
        }
        for name, floor in floors.items():
            data[f"vs_{name.replace('-', '_')}"] = _ratio(self, floor)
        return data


def _ratio(row: Row, floor: Optional[Row]) -> Optional[float]:
    """Throughput of ``row`` over that of ``floor`` (> 1: ``row`` is faster)."""
    if floor is None or row.median_s <= 0 or floor.median_s <= 0 or row is floor:
        return None
    return row.mib_s / floor.mib_s


def summarize(op: Op, samples: Sequence[dict[str, Any]], rss_floor: int = 0) -> Row:
    """Medians and extremes of one operation's samples.

    ``rss_floor`` is the least ``ru_maxrss`` any child reports (what it inherits from the
    spawner's fork); a row at that floor is marked as an upper bound.
    """
    times = [s["op_s"] for s in samples]
    rss = [s["maxrss_bytes"] for s in samples if s.get("maxrss_bytes") is not None]
    cpu = [s["cpu_s"] for s in samples if s.get("cpu_s") is not None]
    peaks = [s["temp_peak_bytes"] for s in samples if s.get("temp_peak_bytes") is not None]
    left = [s["temp_left_bytes"] for s in samples if s.get("temp_left_bytes") is not None]
    return Row(
        op=op,
        rounds=len(samples),
        median_s=statistics.median(times),
        min_s=min(times),
        max_s=max(times),
        bytes=int(samples[0]["bytes"]),
        cpu_median=statistics.median(cpu) if cpu and op.tool != "docker" else None,
        rss_median=int(statistics.median(rss)) if rss and op.tool != "docker" else None,
        rss_max=max(rss) if rss and op.tool != "docker" else None,
        temp_peak=max(peaks) if peaks else None,
        temp_left=max(left) if left else None,
        samples=tuple(samples),
        rss_is_bound=bool(rss) and max(rss) <= rss_floor + 256 * 1024,
    )


def floors_of(rows: Sequence[Row], image: str) -> dict[str, Row]:
    """The reference rows of one image: ``cp``, ``sha256``, ``cat`` and ``docker-save``."""
    found = {}
    for row in rows:
        if row.op.image == image and row.op.kind in ("cp", "cp-sync", "sha256", "cat",
                                                       "docker-save", "layer-copy"):
            found[row.op.kind] = row
    return found


def find(rows: Sequence[Row], key: str) -> Optional[Row]:
    for row in rows:
        if row.op.key == key:
            return row
    return None


# -- formatting -------------------------------------------------------------------------------


def fmt_bytes(n: Optional[int]) -> str:
    if n is None:
        return "n/a"
    if n == 0:
        return "0"
    if n < MiB:
        return f"{n / 1024:.1f} KiB"
    if n < 1 << 30:
        return f"{n / MiB:.1f} MiB"
    return f"{n / (1 << 30):.2f} GiB"


def fmt_mib(n: Optional[int]) -> str:
    return "n/a" if n is None else f"{n / MiB:.1f}"


def fmt_s(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f}"
    if seconds >= 1:
        return f"{seconds:.2f}"
    return f"{seconds:.3f}"


def fmt_ratio(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.2f}x"


TABLE_HEADER = (
    "operation",
    "median s",
    "min s",
    "max s",
    "CPU s",
    "MiB/s",
    "vs cp",
    "vs sha256",
    "peak RSS MiB",
    "temp bytes (peak)",
)


def table_cells(rows: Sequence[Row], image: str) -> list[tuple[str, ...]]:
    floors = floors_of(rows, image)
    cells: list[tuple[str, ...]] = []
    for row in rows:
        if row.op.image != image:
            continue
        cells.append(
            (
                row.op.label,
                fmt_s(row.median_s),
                fmt_s(row.min_s),
                fmt_s(row.max_s),
                "n/a" if row.cpu_median is None else fmt_s(row.cpu_median),
                f"{row.mib_s:.0f}",
                fmt_ratio(_ratio(row, floors.get("cp"))),
                fmt_ratio(_ratio(row, floors.get("sha256"))),
                ("<= " if row.rss_is_bound else "") + fmt_mib(row.rss_median),
                fmt_bytes(row.temp_peak),
            )
        )
    return cells


def _text_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = [v.rjust(w) for v, w in zip(values[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def _md_table(header: Sequence[str], cells: Sequence[Sequence[str]], numbers: bool = True) -> str:
    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    align = ["---"] + ["---:" if numbers else "---"] * (len(header) - 1)
    return "\n".join([line(header), "|" + "|".join(align) + "|", *(line(c) for c in cells)])


# -- targets, scaling, headlines --------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    what: str
    goal: str
    measured: str
    met: Optional[bool]  # None: not measured in this run


def _best_ratio(row: Row, floor: Row) -> float:
    """Throughput ratio of the two best rounds: the least disturbed by other load."""
    return (row.bytes / row.min_s) / (floor.bytes / floor.min_s)


def target_rows(rows: Sequence[Row], scaling: Sequence[dict[str, Any]]) -> list[Target]:
    """The performance targets, judged on the big image, file to file, from each store.

    Each ratio is of medians; the ratio of the best rounds follows in parentheses, since on a
    shared machine the best round is the one least disturbed by other work.
    """
    floors = floors_of(rows, "big")
    cp, sha, docker = floors.get("cp"), floors.get("sha256"), floors.get("docker-save")
    targets = []

    def judge(keys: Sequence[tuple[str, str]], floor: Optional[Row], goal: Optional[float],
              what: str, faster: bool = False) -> None:
        """``faster``: how many times less time than ``floor`` (else a throughput ratio)."""
        parts, verdicts = [], []
        for name, key in keys:
            row = find(rows, key)
            if row is None or floor is None:
                continue
            if faster:
                value, best = floor.median_s / row.median_s, floor.min_s / row.min_s
                parts.append(f"{name}{value:.1f}x (best {best:.1f}x)")
            else:
                value, best = row.mib_s / floor.mib_s, _best_ratio(row, floor)
                parts.append(f"{name}{value:.2f}x (best {best:.2f}x)")
            verdicts.append(goal is None or value >= goal)
        met = (all(verdicts) if goal is not None else None) if verdicts else None
        goal_text = "" if goal is None else f">= {goal:g}x"
        targets.append(Target(what, goal_text, ", ".join(parts) or "not measured", met))

    def stores(pattern: str) -> list[tuple[str, str]]:
        names = ("memory", "oci", "archive")
        return [(f"{store} ", pattern.format(store=store)) for store in names]

    judge(stores("big/save/{store}/file/noverify"), cp, TARGET_COPY_VS_CP,
          "save, verify=False: throughput vs cp")
    judge(stores("big/save/{store}/file/noverify"), floors.get("layer-copy"), TARGET_COPY_VS_CP,
          "save, verify=False: vs the same kernel copies at the archive's offsets")
    judge(stores("big/save/{store}/file/verify"), sha, TARGET_VERIFY_VS_SHA256,
          "save, verify=True: throughput vs sha256")
    judge(stores("big/save/{store}/file/noverify"), docker, TARGET_VS_DOCKER_SAVE,
          "save, verify=False: speed-up over docker save", faster=True)
    judge(stores("big/save/{store}/file/verify"), docker, None,
          "save, verify=True: speed-up over docker save",
          faster=True)

    saves = [r for r in rows if r.op.tool == "tarexport" and r.op.kind == "save"]
    temp = [r.temp_peak for r in saves if r.temp_peak is not None]
    targets.append(Target("save: temporary disk (every save, both images)", "0 bytes",
                          fmt_bytes(max(temp)) if temp else "not measured",
                          (max(temp) == 0) if temp else None))
    if docker is not None:
        targets.append(Target("docker save -o: temporary disk", "",
                              fmt_bytes(docker.temp_peak), None))

    judge([("", "big/load/file")], sha, TARGET_LOAD_VS_SHA256,
          "load (verifies; store fsyncs): vs sha256")
    judge([("", "big/load/file/nosync")], sha, TARGET_LOAD_VS_SHA256,
          "load (verifies; no fsync): vs sha256")
    judge([("", "big/load/file")], floors.get("cp-sync"), None,
          "load (verifies; store fsyncs): vs cp && sync")

    ours = [r for r in rows if r.op.tool == "tarexport" and r.op.image == "big"
            and r.rss_max is not None]
    if ours:
        worst = max(ours, key=lambda r: r.rss_max or 0)
        targets.append(Target("peak RSS: every tarexport run, big image",
                              f"<= {TARGET_PEAK_RSS // MiB} MiB",
                              f"{fmt_mib(worst.rss_max)} MiB max ({worst.op.label})",
                              (worst.rss_max or 0) <= TARGET_PEAK_RSS))
    if scaling:
        spread = max(abs(item["change"]) for item in scaling)
        targets.append(Target("peak RSS: flat from base size to scaled size",
                              f"within +-{TARGET_FLATNESS:.0%}",
                              f"largest change {spread:+.1%}" if spread else "no change",
                              spread <= TARGET_FLATNESS))
    return targets


def scaling_rows(rows: Sequence[Row], scale: Sequence[Row]) -> list[dict[str, Any]]:
    """Peak RSS of the same operation on the big image and on the scaled one."""
    result = []
    for large in scale:
        base = find(rows, large.op.key.replace("scale/", "big/", 1))
        if base is None or base.rss_median is None or large.rss_median is None:
            continue
        result.append({
            "label": large.op.label,
            "base_bytes": base.bytes,
            "scaled_bytes": large.bytes,
            "base_rss": base.rss_median,
            "scaled_rss": large.rss_median,
            "base_s": base.median_s,
            "scaled_s": large.median_s,
            "change": large.rss_median / base.rss_median - 1,
        })
    return result


def headlines(rows: Sequence[Row], scaling: Sequence[dict[str, Any]],
              noop_rss: Optional[int]) -> list[str]:
    """Two or three sentences to quote, from the big image's figures (medians)."""
    floors = floors_of(rows, "big")
    lines = []
    plain = find(rows, "big/save/memory/file/noverify")
    verify = find(rows, "big/save/memory/file/verify")
    docker = floors.get("docker-save")
    if plain is not None and verify is not None and docker is not None:
        lines.append(
            f"`docker save -o` of a {fmt_bytes(docker.bytes)} image takes "
            f"{fmt_s(docker.median_s)} s and stages {fmt_bytes(docker.temp_peak)} in a "
            f"temporary directory; tarexport writes the same bytes in {fmt_s(plain.median_s)} s "
            f"({docker.median_s / plain.median_s:.0f}x faster), or {fmt_s(verify.median_s)} s "
            f"with every layer digest verified ({docker.median_s / verify.median_s:.0f}x), "
            "with no temporary disk at all."
        )
    cp, sha = floors.get("cp"), floors.get("sha256")
    if plain is not None and cp is not None and verify is not None and sha is not None:
        lines.append(
            f"A save copies at {plain.mib_s:.0f} MiB/s ({plain.mib_s / cp.mib_s:.2f}x `cp`); "
            f"with verification at {verify.mib_s:.0f} MiB/s "
            f"({verify.mib_s / sha.mib_s:.2f}x a bare `hashlib.sha256` pass over the file)."
        )
    ours = [r.rss_max for r in rows if r.op.tool == "tarexport" and r.rss_max is not None]
    if ours:
        sizes = ""
        if scaling:
            sizes = (f" at {fmt_bytes(scaling[0]['base_bytes'])} as at "
                     f"{fmt_bytes(scaling[0]['scaled_bytes'])}")
            ours += [item["scaled_rss"] for item in scaling]
        floor = ""
        if noop_rss:
            floor = f", {fmt_mib(noop_rss)} MiB of which is the interpreter with tarexport imported"
        lines.append(f"Peak RSS of a save or load stays under {fmt_mib(max(ours))} MiB{sizes}"
                     f"{floor}.")
    return lines


def _target_cells(targets: Sequence[Target]) -> list[tuple[str, str, str, str]]:
    verdict = {True: "met", False: "MISSED", None: ""}
    return [(t.what, t.goal, t.measured, verdict[t.met]) for t in targets]


def _scaling_cells(scaling: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [
        (
            item["label"],
            f"{fmt_bytes(item['base_bytes'])}: {fmt_mib(item['base_rss'])} MiB, "
            f"{fmt_s(item['base_s'])} s",
            f"{fmt_bytes(item['scaled_bytes'])}: {fmt_mib(item['scaled_rss'])} MiB, "
            f"{fmt_s(item['scaled_s'])} s",
            f"{item['change']:+.1%}",
        )
        for item in scaling
    ]


SCALING_HEADER = ("operation", "base: peak RSS, time", "scaled: peak RSS, time", "RSS change")
TARGET_HEADER = ("target", "goal", "measured", "")


def _image_title(image: dict[str, Any]) -> str:
    return (
        f"{image['key'].capitalize()} image: {image['files']} files in 4 layers, "
        f"{fmt_bytes(image['layer_bytes'])} of layers, archive {fmt_bytes(image['archive_size'])}"
    )


def _load_text(report: dict[str, Any]) -> str:
    load = report["load"]
    return (
        f"Machine load during the {load['seconds'] / 60:.1f}-minute run: "
        f"{load['busy_cores']:.2f} of {report['machine']['cores']} cores busy on average, "
        f"{load['measured_cores']:.2f} of them the measured processes; load average "
        f"{load['loadavg_start']} at the start, {load['loadavg_end']} at the end"
    )


def text_report(report: dict[str, Any], rows: Sequence[Row], scale: Sequence[Row]) -> str:
    out = []
    machine = report["machine"]
    out.append(
        f"machine: {machine['cores']} cores ({machine['cpu']}), "
        f"{fmt_bytes(machine['memory_bytes'])} RAM, {machine['kernel']}, {machine['python']}, "
        f"work dir on {machine['filesystem']}"
    )
    out.append(f"docker: {report['docker']}")
    out.append(_load_text(report))
    out.append(f"rounds: {report['rounds']} (+{report['warmup']} warm-up), medians shown")
    for image in report["images"]:
        if image["key"] == "scale":
            continue
        out.append("")
        out.append(_image_title(image))
        out.append(_text_table(TABLE_HEADER, table_cells(rows, image["key"])))
    scaling = report["scaling"]
    if scaling:
        out.append("")
        out.append("memory scaling (median peak RSS)")
        out.append(_text_table(SCALING_HEADER, _scaling_cells(scaling)))
    out.append("")
    out.append("targets (big image, warm cache, file to file)")
    out.append(_text_table(TARGET_HEADER, _target_cells(report["target_objects"])))
    for line in report["checks"]:
        out.append(f"check: {line}")
    if report["headlines"]:
        out.append("")
        out.extend(f"* {line}" for line in report["headlines"])
    return "\n".join(out) + "\n"


def markdown_report(report: dict[str, Any], rows: Sequence[Row], scale: Sequence[Row]) -> str:
    machine = report["machine"]
    out = ["### Machine", ""]
    out.append(f"- CPU: {machine['cores']} cores, {machine['cpu']}"
               + (f" ({', '.join(machine['cpu_flags'])})" if machine["cpu_flags"] else ""))
    out.append(f"- Memory: {fmt_bytes(machine['memory_bytes'])}")
    out.append(f"- Kernel: {machine['kernel']}")
    out.append(f"- Python: {machine['python']}; tarexport {machine['tarexport']}")
    out.append(f"- Filesystem of the work directory: {machine['filesystem']}")
    out.append(f"- Docker: {report['docker']}")
    out.append(f"- {_load_text(report)}")
    out.append(f"- Rounds: {report['rounds']} measured (+{report['warmup']} warm-up), "
               "operations alternating within each round; medians, with min and max")
    for image in report["images"]:
        if image["key"] == "scale":
            continue
        out += ["", f"### {_image_title(image)}", ""]
        out.append(_md_table(TABLE_HEADER, table_cells(rows, image["key"])))
    if report["scaling"]:
        out += ["", "### Memory scaling", ""]
        out.append(_md_table(SCALING_HEADER, _scaling_cells(report["scaling"])))
    out += ["", "### Targets", ""]
    out.append(_md_table(TARGET_HEADER, _target_cells(report["target_objects"]), numbers=False))
    if report["checks"]:
        out.append("")
        out.extend(f"- {line}" for line in report["checks"])
    if report["headlines"]:
        out += ["", "### Headline figures", ""]
        out.extend(f"- {line}" for line in report["headlines"])
    return "\n".join(out) + "\n"
