"""Mutation testing of the maths: which small mistakes would the tests let through?

    python3 scripts/host.py mutate                 every target (kernels/, then the patch maths in nodes/)
    python3 scripts/host.py mutate kernels         kernels/ only
    python3 scripts/host.py mutate nodes/zs2.py    one file
    python3 scripts/host.py mutate --report        the report from mutmut's cache (after an interrupted run)

Runs mutmut 2.5.1 (PyPI; installed into the host venv on first use) file by file, each file against the test
modules that cover it, with random order off and stop-at-first-failure on. kernels/ files are mutated whole;
in nodes/ only the functions that hold maths (correction blend and schedule, positions, window choice, re-noise
units, noise chains, frame groups) are mutated: mutmut takes them as "changed lines" from a patch file this
script writes. The score and every surviving mutant's diff go to bench/results/mutation-cpu.json.
"""
from __future__ import annotations

import ast
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "bench" / "results" / "mutation-cpu.json"

ERRORS = "tests/kernels/test_kernel_errors.py"  # every kernel's messages, word for word
# file -> (functions to mutate or None for the whole file, test modules that cover it)
TARGETS: dict[str, tuple[list[str] | None, list[str]]] = {
    "kernels/noise.py": (None, ["tests/kernels/test_noise_kernels.py", ERRORS]),
    "kernels/warp.py": (None, ["tests/kernels/test_warp_kernels.py", ERRORS]),
    "kernels/attention.py": (None, ["tests/kernels/test_attention_kernels.py", ERRORS]),
    "kernels/cascade.py": (None, ["tests/kernels/test_cascade_kernels.py", ERRORS]),
    "kernels/exvideo.py": (None, ["tests/kernels/test_exvideo_kernels.py", ERRORS,
                                  "tests/nodes/test_exvideo_nodes.py"]),  # the keymap against the real U-Net
    "kernels/tiles.py": (None, ["tests/kernels/test_tile_kernels.py", "tests/nodes/test_tiled_decode.py"]),
    "nodes/zerosmooth.py": (["CorrectionAttention.strength", "CorrectionAttention.__call__", "_interpolated_positions",
                             "_stage_conds"],
                            ["tests/nodes/test_zerosmooth_nodes.py"]),
    "nodes/text2video_zero.py": (["sampler_state", "handover_latent", "latent_masks", "motion_rows"],
                                 ["tests/nodes/test_text2video_zero_motion.py"]),
    "nodes/zs2.py": (["correlated", "DependencyNoiseSampling.noise_sampler", "frames_per_video"],
                     ["tests/nodes/test_zs2_nodes.py"]),
    "nodes/exvideo.py": (["_table_embed", "_stretched_sinusoid", "_pingpong_sinusoid", "_conv_forward"],
                         ["tests/nodes/test_exvideo_nodes.py", "tests/nodes/test_exvideo_reference.py"]),
    "nodes/utility.py": (["frames_that_fit", "TemporalTiledVAEDecode.validate_inputs",
                          "TemporalTiledVAEDecode.execute"], ["tests/nodes/test_tiled_decode.py"]),
    "nodes/_dit.py": (["_image_span", "_token_counts", "_frame_kv", "_tokens_last", "_restore", "dispatch"],
                      ["tests/nodes/test_dit_attention.py"]),
    "nodes/_patching.py": (["video_groups", "spatial_layout", "SigmaRange.active", "FramePositions.__call__",
                            "compute_dtype", "_position", "argument", "with_argument"],
                           ["tests/nodes/test_cross_frame_attention.py", "tests/nodes/test_zerosmooth_nodes.py",
                            "tests/nodes/test_weight_dtypes.py", "tests/nodes/test_wrapper_arguments.py"]),
}


def function_lines(path: Path, names: list[str]) -> list[int]:
    """Line numbers of the bodies of the named functions (`Class.method` for methods)."""
    tree = ast.parse(path.read_text())
    found: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found[f"{node.name}.{item.name}"] = item
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"mutate: {path} has no function(s) {missing}: update TARGETS in scripts/mutate.py")
    lines: list[int] = []
    for n in names:
        fn = found[n]
        body = fn.body[1:] if ast.get_docstring(fn) and len(fn.body) > 1 else fn.body
        lines += range(body[0].lineno, fn.end_lineno + 1)
    return sorted(set(lines))


def patch_file(rel: str, lines: list[int], folder: Path) -> Path:
    """A unified diff in which exactly `lines` of `rel` are "added" (mutmut mutates the added lines only)."""
    text = (REPO / rel).read_text().splitlines()
    out = [f"--- {rel}", f"+++ {rel}"]
    for n in lines:  # one hunk per line: an insertion of that line after line n − 1
        out += [f"@@ -{n - 1},0 +{n},1 @@", "+" + text[n - 1]]
    p = folder / (rel.replace("/", "_") + ".patch")
    p.write_text("\n".join(out) + "\n")
    return p


def mutmut(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=REPO, text=True, capture_output=True,
                          check=check)


def summarise(files: dict) -> dict:
    """Mutants and score per folder (kernels, nodes) from the per-file entries."""
    groups = {}
    for prefix in ("kernels/", "nodes/"):
        part = [v for k, v in files.items() if k.startswith(prefix)]
        total = sum(v["mutants"] for v in part)
        if total:
            caught = total - sum(v["survived"] for v in part)
            groups[prefix.rstrip("/")] = {"mutants": total, "caught": caught, "score": round(caught / total, 4),
                                          "untested": sum(v.get("untested", 0) for v in part)}
    return groups


def tested(rel: str) -> int:
    """Mutants of `rel` with a result in mutmut's cache (the progress the watchdog follows)."""
    import sqlite3
    cache = REPO / ".mutmut-cache"
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("select count(*) from Mutant m join Line l on m.line = l.id join SourceFile f on "
                              "l.sourcefile = f.id where f.filename = ? and m.status != 'untested'",
                              (rel,)).fetchone()[0]
    except sqlite3.Error:  # the table is created by the first run, or locked for a moment
        return 0


def run_watched(args: list[str], rel: str, stall: float) -> int:
    """`mutmut run` with a watchdog. mutmut 2.5.1 can hang for good with no test running (seen three times on
    2026-12-01: its feeder thread blocked writing to a multiprocessing pipe); when no mutant of `rel` gets a
    result for `stall` seconds, its whole process group is killed and the run resumed: mutmut keeps every
    result in its cache and tests only what has none (against an unchanged tests/ folder)."""
    import signal
    import time
    source = (REPO / rel).read_text()  # a killed mutmut leaves its current mutant in the file: put it back
    for attempt in range(1, 8):
        log = open(REPO / ".mutmut-run.log", "a")
        proc = subprocess.Popen([sys.executable, "-m", "mutmut", *args], cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        last, since = tested(rel), time.monotonic()
        while proc.poll() is None:
            time.sleep(5)
            now = tested(rel)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since > stall:
                print(f"mutate: {rel}: no result for {stall:.0f} s after {now} mutants: mutmut restarted "
                      f"(attempt {attempt + 1})", flush=True)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                (REPO / rel).write_text(source)
                break
        log.close()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.returncode is not None and proc.returncode >= 0:
            return proc.returncode  # mutmut 2's exit code is a bit field of what it found; 0–31 all mean "done"
    return -1


def main(argv: list[str]) -> int:
    selected = [t for t in TARGETS if not argv or any(t == a or t.startswith(a.rstrip("/") + "/") for a in argv)]
    if not selected:
        print(f"mutate: nothing matches {argv}; targets: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    (REPO / ".mutmut-cache").unlink(missing_ok=True)
    (REPO / ".mutmut-run.log").unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="zerovideo-mutate-"))
    try:
        for rel in selected:
            functions, tests = TARGETS[rel]
            runner = " ".join([sys.executable, "-m", "scripts.mutate", "--pytest", *tests])
            args = ["run", "--paths-to-mutate", rel, "--runner", runner, "--tests-dir", "tests", "--CI",
                    "--simple-output", "--no-progress"]
            if functions:
                args += ["--use-patch-file", str(patch_file(rel, function_lines(REPO / rel, functions), tmp))]
            started = datetime.datetime.now()
            os.environ.pop("ZEROVIDEO_MUTATE_TIMEOUT", None)  # the previous file's limit is not this baseline's
            if run_tests(tests) != 0:  # unmutated: must pass; its time sets the limit per mutant
                print(f"mutate: {', '.join(tests)} fail without any mutation: fix them first", file=sys.stderr)
                return 1
            baseline = (datetime.datetime.now() - started).total_seconds()
            limit = max(10.0, 4 * baseline)
            os.environ["ZEROVIDEO_MUTATE_TIMEOUT"] = str(limit)  # mutmut's own limit is 10×
            print(f"mutate: {rel} ({'functions ' + ', '.join(functions) if functions else 'whole file'}) "
                  f"against {', '.join(tests)}", flush=True)
            code = run_watched(args, rel, stall=max(300.0, 3 * limit + 60))
            if code < 0:
                print(f"mutate: mutmut kept hanging on {rel}; see .mutmut-run.log", file=sys.stderr)
                return 1
            print(f"mutate: {rel}: {tested(rel)} mutants tested", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return write_report("python3 scripts/host.py mutate " + " ".join(argv), merge=bool(argv))


def run_tests(tests: list[str]) -> int:
    """The runner mutmut calls for each mutant. mutmut 2 counts only exit code 1 as "tests failed": a mutant
    that breaks collection or the import (pytest's 2, 3, 4) would count as survived, so every failure is 1.
    pytest runs in a process group of its own with a time limit below mutmut's (mutmut kills only its direct
    child): a mutant that loops is killed with everything it started, and counted as caught. (mutmut 2.5.1
    still hung twice on 2026-12-01, blocked writing to one of its own pipes with no test running; then
    `mutate --report` records what the cache holds.)"""
    import signal
    limit = float(os.environ.get("ZEROVIDEO_MUTATE_TIMEOUT", "600"))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p",
                             "no:cacheprovider", *tests], start_new_session=True)
    try:
        code = proc.wait(limit)
    except subprocess.TimeoutExpired:
        code = "timeout"
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever the run left behind
    except ProcessLookupError:
        pass
    proc.wait()
    return 0 if code == 0 else 1


def write_report(command: str, merge: bool) -> int:
    """The report from mutmut's cache as it stands (also after an interrupted run): per file, the mutants
    tested, marked partial where some are untested. With `merge`, files not in the cache keep their entries
    from the previous report."""
    import sqlite3
    db = sqlite3.connect(REPO / ".mutmut-cache")
    rows = db.execute("select f.filename, m.status, m.id from Mutant m join Line l on m.line = l.id "
                      "join SourceFile f on l.sourcefile = f.id").fetchall()
    files: dict = {}
    for filename, status, mid in rows:
        entry = files.setdefault(filename, {"functions": TARGETS.get(filename, (None, []))[0],
                                            "tests": TARGETS.get(filename, (None, []))[1], "killed": 0,
                                            "timeout": 0, "suspicious": 0, "survived": 0, "untested": 0,
                                            "survivors": []})
        kind = {"ok_killed": "killed", "bad_timeout": "timeout", "ok_suspicious": "suspicious",
                "bad_survived": "survived"}.get(status, "untested")
        entry[kind] += 1
        if kind == "survived":
            entry["survivors"].append({"id": mid, "diff": mutmut("show", str(mid)).stdout.strip()})
    for entry in files.values():
        entry["mutants"] = sum(entry[k] for k in ("killed", "timeout", "suspicious", "survived"))
        entry["score"] = round(1 - entry["survived"] / entry["mutants"], 4) if entry["mutants"] else None
        entry["partial"] = entry["untested"] > 0
    previous = json.loads(RESULT.read_text()) if merge and RESULT.exists() else None
    if previous:
        files = dict(previous["files"], **files)
    groups = summarise(files)
    report = {"benchmark": "mutation", "tool": "mutmut 2.5.1",
              "when": datetime.datetime.now().isoformat(" ", "seconds"),
              "command": command, "groups": groups, "files": files}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    for name, g in groups.items():
        print(f"mutate: {name}: {g['caught']}/{g['mutants']} mutants caught ({100 * g['score']:.1f}%), "
              f"{g['untested']} untested")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if sys.argv[1:2] == ["--pytest"]:
        sys.exit(run_tests(sys.argv[2:]))
    if sys.argv[1:2] == ["--report"]:
        sys.exit(write_report("python3 scripts/host.py mutate --report (from the cache of an interrupted run)",
                              merge=True))
    sys.exit(main(sys.argv[1:]))
