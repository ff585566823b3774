"""Turning a run's result into a table, the summary of gpugrad's performance goals, a JSON file and a plot.

Example::

    result = run(Settings(quick=True))
    print(format_table(result))
    write_json(result, "bench.json")
    plot(result, "bench.png")          # needs matplotlib
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from typing import Any

from gpugrad.bench.core import LIBRARIES
from gpugrad.bench.hardware import threads_summary

SYMBOLS = "abcdefghijklmnopqrstuvwxyz"
COLORS = {"gpugrad": "#000000", "torch": "#ee4c2c", "jax": "#5e97f6", "jax.jit": "#1a4ba8",
          "autograd": "#2ca02c", "numpy": "#9467bd"}


def fmt_time(seconds: float | None, per: int = 1) -> str:
    """``0.0000039 -> "3.90us"``; ``per`` divides first (per-op units)."""
    if seconds is None:
        return "-"
    t = seconds / per
    if t < 0.9995e-3:
        return f"{t * 1e6:.3g}us"
    if t < 0.9995:
        return f"{t * 1e3:.3g}ms"
    return f"{t:.3g}s"


def _pct(x: float | None) -> str:
    return "" if x is None else f" ({100 * x:.0f}%)"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return lines


def columns(result: dict[str, Any]) -> list[str]:
    """The libraries shown: gpugrad and every peer that could run in this environment."""
    libs = ["gpugrad"]
    for lib in result.get("libraries", LIBRARIES)[1:]:
        if result["peers"].get(lib, {}).get("available"):
            libs.append(lib)
    return libs


def header_lines(result: dict[str, Any]) -> list[str]:
    dev = result["device"]
    where = dev.get("name", "?")
    if dev.get("emulated"):
        where += " (emulated: gpugrad's CUDA backend and kernels run on the CPU; not a GPU's speed)"
    elif dev.get("kind") == "cuda":
        where += f" (driver {dev.get('driver') or dev.get('cuda_driver')}, CUDA runtime {dev.get('cuda_runtime')})"
    lines = [f"gpugrad bench on {result['settings']['device']}: {where}; {threads_summary(result['threads'])}; "
             f"{result['date']}"]
    v = result["versions"]
    lines.append("versions: " + ", ".join(f"{k} {v[k]}" for k in ("gpugrad", "numpy", "python", "torch", "jax",
                                                                   "autograd", "cupy") if k in v))
    lim = result["limits"]
    parts = []
    copy = lim.get("copy") or {}
    if copy.get("bytes_per_s"):
        parts.append(f"copy {copy['bytes_per_s'] / 1e9:.1f} GB/s ({copy['method']})")
    for dt, m in (lim.get("matmul") or {}).items():
        if m.get("flop_per_s"):
            parts.append(f"matmul {dt} {m['flop_per_s'] / 1e12:.3g} TFLOP/s (n={m['n']}, {m['method']})")
    if parts:
        lines.append("ceilings measured in this run: " + "; ".join(parts))
    skipped = [f"{name} ({p.get('reason')})" for name, p in result["peers"].items() if not p.get("available")]
    if skipped:
        lines.append("peers skipped: " + "; ".join(skipped))
    if not result.get("gpugrad", {}).get("available", True):
        lines.append(f"gpugrad skipped: {result['gpugrad'].get('reason')}")
    lines.extend(f"note: {n}" for n in result.get("notes", []))
    lines.append("cells: median time per step; (x) = gpugrad time / peer time, below 1 means gpugrad is faster; "
                 "numpy = hand-written NumPy" + (" on CuPy" if result["device"].get("kind") == "cuda" else ""))
    return lines


def format_emulated(result: dict[str, Any]) -> str:
    """The report of a run on the emulated CUDA device: per step, what a GPU would pay."""
    out = header_lines(result)[:-1]
    out.append("cells: per training/fwd+bwd step after warm-up, counted by the emulated device: kernel launches, "
               "bytes read+written by them (x = / the least possible traffic: inputs read once, outputs written "
               "once), host syncs, run-time compilations; numpy = hand-written NumPy on CuPy")
    header = ["workload", "case", "launches", "bytes (x least)", "syncs", "compiles", "hand-written: launches",
              "bytes (x least)"]
    table = []
    for row in result["rows"]:
        cells = [row["workload"], row["case"]]
        for lib in ("gpugrad", "numpy"):
            r = row["results"].get(lib, {})
            e = r.get("emulated")
            if e is None:
                cells += [r.get("status", "-")] + (["-", "-", "-"] if lib == "gpugrad" else ["-"])
                continue
            ratio = f" ({e['bytes_ratio']:.2f}x)" if e.get("bytes_ratio") else ""
            cells += [str(e["launches"]), f"{_bytes(e['bytes'])}{ratio}"]
            if lib == "gpugrad":
                cells += [str(e["syncs"]), str(e["compilations"])]
        table.append(cells)
    out.append("")
    out.extend(_table(header, table))
    out.extend(_goal_lines(result))
    return "\n".join(out)


def _goal_lines(result: dict[str, Any]) -> list[str]:
    """The report's closing lines: each goal this run measured, and whether it was met."""
    lines = [g["line"] for g in goals(result)]
    if not lines:
        return []
    what = "counts of the emulated device" if result["device"].get("emulated") else "ratios: gpugrad / peer"
    return ["", f"gpugrad's performance goals, measured in this run ({what}):", *(f"  {line}" for line in lines)]


def _bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


def format_table(result: dict[str, Any]) -> str:
    """The whole report: header, one table per workload with its notes, then the goals."""
    if result["device"].get("emulated"):
        return format_emulated(result)
    libs = columns(result)
    gpu = result["device"].get("kind") == "cuda"
    out = header_lines(result)
    by_workload: dict[str, list[dict]] = {}
    for row in result["rows"]:
        by_workload.setdefault(row["workload"], []).append(row)
    for name, rows in by_workload.items():
        unit = rows[0]["unit"]
        out.append("")
        out.append(f"{name}: {rows[0]['title']}" + (f" [{unit}]" if unit != "ms" else ""))
        has_bytes = any(r.get("bytes") for r in rows)
        has_flops = any(r.get("flops") for r in rows)
        header = ["case", *libs]
        if has_bytes:
            header.append("gpugrad GB/s (%copy)")
        if has_flops:
            header.append("gpugrad TFLOP/s (%matmul)")
        if gpu:
            header.append("launches gpugrad/torch")
        notes: dict[tuple[str, str], str] = {}
        table = []
        for row in rows:
            cells = [row["case"]]
            for lib in libs:
                r = row["results"].get(lib, {"status": "skipped", "reason": "not run"})
                cells.append(_cell(r, row["per"], notes, lib))
            g = row["results"].get("gpugrad", {})
            if has_bytes:
                cells.append(f"{g['GBps']:.3g}{_pct(g.get('frac_copy'))}" if g.get("GBps") else "-")
            if has_flops:
                cells.append(f"{g['TFLOPs']:.3g}{_pct(g.get('frac_matmul'))}" if g.get("TFLOPs") else "-")
            if gpu:
                t = row["results"].get("torch", {})
                cells.append(f"{_launch(g)}/{_launch(t)}")
            table.append(cells)
        out.extend(_table(header, table))
        for (lib, reason), sym in notes.items():
            out.append(f"    [{sym}] {lib}: {reason}")
    out.extend(_goal_lines(result))
    return "\n".join(out)


def _launch(r: dict) -> str:
    if r.get("status") != "ok":
        return "-"
    n = r.get("launches")
    return "n/a" if n is None else str(n)


def _cell(r: dict, per: int, notes: dict, lib: str) -> str:
    status = r.get("status")
    if status == "ok":
        text = fmt_time(r.get("median_s"), per)
        if r.get("ratio") is not None:
            text += f" ({r['ratio']:.2f}x)"
        return text
    key = (lib, r.get("reason", ""))
    sym = notes.setdefault(key, SYMBOLS[len(notes) % len(SYMBOLS)])
    return ("FAILED" if status == "failed" else "skip") + f"[{sym}]"


def _find(result: dict, workload: str, pred: Any = None) -> Iterable[dict]:
    for row in result["rows"]:
        if row["workload"] == workload and (pred is None or pred(row)):
            yield row


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """gpugrad's performance goals with this run's measured value, where the run measured it.

    Each: ``{"goal", "value", "target", "met", "line"}``: ratios gpugrad / peer where timed; counts
    (launches, bytes ratios, compilations) on the emulated CUDA device.
    """
    gpu = result["device"].get("kind") == "cuda"
    emulated = bool(result["device"].get("emulated"))
    unreliable = bool(result["settings"].get("thread_warning")) and not emulated  # (threads change no count)
    out: list[dict[str, Any]] = []

    def add(goal: str, value: float | None, target: float, below: bool, what: str) -> None:
        if value is None:
            return
        met = value <= target if below else value >= target
        sign = "<=" if below else ">="
        shown = f"{value:g}" if isinstance(value, int) else f"{value:.2f}"
        line = f"{goal}: {what} = {shown} (goal {sign} {target}): {'met' if met else 'not met'}"
        if unreliable:
            line += " [unreliable: thread pools unpinned, see the note above]"
        out.append({"goal": goal, "value": value, "target": target, "met": met, "unreliable": unreliable,
                    "line": line})

    def ratio(row: dict, lib: str) -> float | None:
        return row["results"].get(lib, {}).get("ratio")

    def counts(row: dict) -> dict:
        return row["results"].get("gpugrad", {}).get("emulated") or {}

    if emulated:
        # no timings to judge: the fused chains' launch and traffic counts instead
        for row in _find(result, "chain"):
            add("fused chain launches", counts(row).get("launches"), 4, True,
                f"kernels for 100 ops fwd+bwd ({row['case']})")
        for row in _find(result, "elementwise"):
            add("fused elementwise launches", counts(row).get("launches"), 3, True, f"kernels ({row['case']})")
            r = counts(row).get("bytes_ratio")
            # judged at the two decimals shown: the sum's partial results (20 bytes) add 0.2% at 1K
            add("fused elementwise traffic", None if r is None else round(r, 2), 1.5, True,
                f"bytes / minimum bytes ({row['case']})")
        for row in result["rows"]:
            add("no compilation after warm-up", counts(row).get("compilations"), 0, True,
                f"compilations per step ({row['workload']} {row['case']})")
        return out
    if not gpu:
        for row in _find(result, "elementwise", lambda r: r["params"]["n"] == 1 << 22):
            add("CPU fused elementwise vs JAX jit", ratio(row, "jax.jit"), 1.0, True,
                f"gpugrad/jax.jit ({row['case']})")
            add("CPU fused elementwise vs hand-NumPy", ratio(row, "numpy"), 1.0, True,
                f"gpugrad/hand-NumPy ({row['case']})")
        for row in _find(result, "chain"):
            add("CPU per-op overhead", ratio(row, "torch"), 0.5, True,
                f"gpugrad/torch us-per-op ({row['case']})")
            add("CPU per-op overhead vs hand-NumPy", ratio(row, "numpy"), 1.0, True,
                f"gpugrad/hand-NumPy us-per-op ({row['case']})")
        for row in _find(result, "mlp"):
            add("CPU MLP step", ratio(row, "numpy"), 1.1, True, f"gpugrad/hand-NumPy ({row['case']})")
            add("CPU MLP step vs PyTorch", ratio(row, "torch"), 1.0, True, f"gpugrad/torch ({row['case']})")
    else:
        for row in _find(result, "elementwise", lambda r: r["params"]["n"] == 1 << 26):
            g = row["results"].get("gpugrad", {})
            add("GPU elementwise bandwidth", g.get("frac_copy"), 0.8, False,
                f"fraction of copy bandwidth at 64M ({row['case']})")
        for row in _find(result, "matmul", lambda r: r["params"]["n"] >= 4096):
            add("GPU matmul", ratio(row, "torch"), 1.05, True, f"gpugrad/torch ({row['case']})")
        for w in ("mlp", "cnn", "transformer"):
            for row in _find(result, w):
                add(f"GPU {w} step", ratio(row, "torch"), 1.0, True, f"gpugrad/torch eager ({row['case']})")
    return out


def to_jsonable(result: dict[str, Any]) -> dict[str, Any]:
    """The result with the goal summary attached (what ``--json`` writes)."""
    out = dict(result)
    out["goals"] = [{k: v for k, v in g.items() if k != "line"} for g in goals(result)]
    return out


def write_json(result: dict[str, Any], path: str) -> None:
    """Write the result as JSON, atomically (a temporary file renamed over ``path``)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bench-", suffix=".json", dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the result is an ordinary file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(to_jsonable(result), f, indent=1, default=_default)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


def plot(result: dict[str, Any], path: str) -> int:
    """Draw time-vs-size curves, one panel per series with two or more sizes, one line per
    library (log-log); returns the number of panels. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[dict]] = {}
    for row in result["rows"]:
        if row.get("size"):
            series.setdefault(row["series"], []).append(row)
    panels = {k: v for k, v in series.items() if len({r["size"] for r in v}) >= 2}
    if not panels:
        panels = series
    n = max(1, len(panels))
    cols = min(3, n)
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(5.5 * cols, 4.2 * rows_n), squeeze=False)
    libs = columns(result)
    for ax, (name, rows) in zip(axes.flat, panels.items()):
        rows = sorted(rows, key=lambda r: r["size"])
        for lib in libs:
            pts = [(r["size"], r["results"][lib]["median_s"] / r["per"]) for r in rows
                   if r["results"].get(lib, {}).get("status") == "ok"]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", label=lib, color=COLORS.get(lib),
                        linewidth=2.4 if lib == "gpugrad" else 1.2, zorder=3 if lib == "gpugrad" else 2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel(rows[0].get("size_label", "size"))
        ax.set_ylabel("seconds per step" if rows[0]["per"] == 1 else f"seconds / {rows[0]['per']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    dev = result["device"]
    fig.suptitle(f"gpugrad bench, {dev.get('name')} ({result['settings']['device']}), {result['date'][:10]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return len(panels)
