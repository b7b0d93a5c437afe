"""Mutation testing of advnlp's core, written up as reports/mutation.md (too slow for CI).

The tester is mutmut 3 (``pip install "mutmut>=3.8,<4"``, part of the ``[dev]`` extra); what it
mutates and which tests it runs are in pyproject.toml's ``[tool.mutmut]``: every function of
base.py, perturbation.py, methods/, distributed.py and registry.py, against the fast tests that
exercise them. Each mutant runs only the tests that reached its function in a clean run, with
``-x``, fewer hypothesis examples and no shrinking (scripts/mutation_pytest_plugin.py).

Two steps, because the "before" figure is the suite without tests/test_core_contracts.py:

    python scripts/mutation_report.py --baseline   # fresh run of every mutant, contract tests
                                                   # deselected -> reports/mutation-baseline.json
    python scripts/mutation_report.py              # rerun what the baseline left alive with every
                                                   # test -> reports/mutation.json, mutation.md

``--ddp`` then runs tests/test_ddp.py (torchrun, 2 ranks) against every distributed.py mutant
still alive; ``--report-only`` rewrites the report from the last results. Survivors that cannot
be killed are annotated in scripts/mutation_notes.py. Runs are niced and use ``--workers``
processes (default 2) so that a shared machine stays usable.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import fnmatch
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
REPORTS = ROOT / "reports"
BASELINE = REPORTS / "mutation-baseline.json"
RESULTS = REPORTS / "mutation.json"
REPORT = REPORTS / "mutation.md"
CONTRACTS = "tests/test_core_contracts.py"
DDP_TESTS = "tests/test_ddp.py"
KILLED = {"killed", "timeout", "segfault"}  # a mutant the tests detect, one way or another

sys.path.insert(0, str(SCRIPTS))
from mutation_notes import DECISIONS, FINDINGS, NOTES  # noqa: E402


def _say(*parts: object) -> None:
    sys.stderr.write(" ".join(str(p) for p in parts) + "\n")


def _environment(*, deselect: str = "", mutated_source: bool = False) -> dict[str, str]:
    """The tests import the mutated copy under mutants/ (mutmut puts it first on sys.path; a
    subprocess, such as a torchrun rank, finds it only through PYTHONPATH)."""
    source = ROOT / ("mutants/src" if mutated_source else "src")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(source), str(SCRIPTS)]),
        "OMP_NUM_THREADS": "1",  # workers, not threads, share the cores
        "MKL_NUM_THREADS": "1",
        "MUTATION_DESELECT": deselect,
    }


def _mutmut(args: list[str], env: dict[str, str], nice: int) -> float:
    """Run ``mutmut ARGS`` (niced) and return its wall time in seconds."""
    command = ["nice", "-n", str(nice), sys.executable, "-m", "mutmut", *args]
    _say("$", " ".join(command[:8]), "..." if len(command) > 8 else "")
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    return time.perf_counter() - start


def _statuses() -> dict[str, str]:
    """mutant name -> status, read from the .meta files mutmut keeps under mutants/."""
    from mutmut.stats import status_by_exit_code

    statuses = {}
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        statuses.update({name: status_by_exit_code[code] for name, code in codes.items()})
    return statuses


def _source_path(name: str) -> Path:
    module = name.split(".x")[0] if ".xǁ" in name else name.rsplit(".x_", 1)[0]
    path = Path("src", *module.split(".")).with_suffix(".py")
    return path if (ROOT / path).exists() else path.with_suffix("") / "__init__.py"


def _def_line(path: Path, function: str, cls: str | None) -> int:
    tree = ast.parse((ROOT / path).read_text())
    scope = tree.body
    if cls is not None:
        scope = next(n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return next(
        n.lineno
        for n in scope
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == function
    )


def _describe(name: str) -> dict[str, object]:
    """File, line and diff of one mutant (the diff as mutmut shows it)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    path = _source_path(name)
    os.chdir(ROOT)  # mutmut reads mutants/ relative to the working directory
    diff = get_diff_for_mutant(name, path=path)
    function, cls = orig_function_and_class_names_from_key(name)
    lines = diff.splitlines()
    body = [line for line in lines if not line.startswith(("---", "+++"))]
    # line of the first change, counted in the diff's copy of the function, then in the file
    hunk = next(line for line in body if line.startswith("@@"))
    number = int(re.match(r"@@ -(\d+)", hunk).group(1))
    first_changed = number
    for line in body[body.index(hunk) + 1 :]:
        if line.startswith(("-", "+")):
            break
        number += 1
        first_changed = number
    code = get_diff_source_start(name, path)
    line = _def_line(path, function, cls) + (first_changed - code)
    changed = [line for line in body if line.startswith(("-", "+"))]
    return {"file": str(path), "line": line, "function": function, "diff": changed}


def get_diff_source_start(name: str, path: Path) -> int:
    """Line of ``def`` in mutmut's copy of the function (comments above it come first)."""
    from mutmut.mutation.diff_apply import read_functions_from_index

    functions = read_functions_from_index(name, path)
    import libcst as cst

    code = cst.Module([functions[0]]).code.strip().splitlines()
    return next(i for i, text in enumerate(code, 1) if re.match(r"\s*(async\s+)?def ", text))


def _attribute(names: list[str], tests_by_function: dict[str, list[str]]) -> dict[str, list[str]]:
    """For each mutant, the first contract test that fails on it (one child process, pytest
    in-process once per mutant with -x: the mutated module is switched by MUTANT_UNDER_TEST)."""
    jobs = {}
    for name in names:
        function = name.rsplit("__mutmut_", 1)[0]
        tests = [t for t in tests_by_function.get(function, []) if t.startswith(CONTRACTS)]
        if tests:
            jobs[name] = tests
    if not jobs:
        return {}
    code = (
        "import json, os, sys, pytest\n"
        "jobs = json.loads(sys.stdin.read()); out = {}\n"
        "class Failures:\n"
        "    def __init__(self): self.ids = []\n"
        "    def pytest_runtest_logreport(self, report):\n"
        "        if report.failed: self.ids.append(report.nodeid)\n"
        "for name, tests in jobs.items():\n"
        "    os.environ['MUTANT_UNDER_TEST'] = name\n"
        "    failures = Failures()\n"
        "    pytest.main(['-x', '-q', '-p', 'no:cacheprovider', '-p', 'mutation_pytest_plugin',\n"
        "                 '--no-header', '-o', 'addopts=', *tests], plugins=[failures])\n"
        "    out[name] = sorted(set(failures.ids))\n"
        "print('MUTATION-JSON' + json.dumps(out))\n"
    )
    result = subprocess.run(
        ["nice", "-n", "15", sys.executable, "-c", code],
        cwd=ROOT / "mutants",
        env=_environment(mutated_source=True),
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        check=True,
    )
    marker = result.stdout.rindex("MUTATION-JSON")
    return json.loads(result.stdout[marker + len("MUTATION-JSON") :])


def _run_ddp(names: list[str], nice: int) -> dict[str, str]:
    """tests/test_ddp.py against each named distributed.py mutant: 'killed' or 'survived'."""
    outcome = {}
    for name in names:
        env = {**_environment(mutated_source=True), "MUTANT_UNDER_TEST": name}
        command = ["nice", "-n", str(nice), sys.executable, "-m", "pytest", "-x", "-q"]
        command += ["-p", "no:cacheprovider", DDP_TESTS]
        result = subprocess.run(command, cwd=ROOT / "mutants", env=env, capture_output=True)
        outcome[name] = "survived" if result.returncode == 0 else "killed"
        _say(f"  {name}: {outcome[name]}")
    return outcome


def _note(name: str, described: dict[str, object]) -> tuple[str, str] | None:
    """(status, reason) from mutation_notes.py, if the note still matches the mutant's diff."""
    if name not in NOTES:
        return None
    status, fragment, reason = NOTES[name]
    if not any(fragment in line for line in described["diff"] if line.startswith("+")):
        return ("open", f"note out of date (expected a mutant containing {fragment!r})")
    return status, reason


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows]


def _diff_cell(diff: list[str]) -> str:
    return "<br>".join(f"`{line[0]} {line[1:].strip()}`" for line in diff)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def write_report(baseline: dict, results: dict) -> None:
    from mutmut import __version__

    before, after = baseline["statuses"], results["statuses"]
    described = results["described"]
    killers = results.get("killers", {})
    notes = {n: _note(n, described[n]) for n in described}
    equivalent = {n for n, note in notes.items() if note and note[0] == "equivalent"}
    # a time-boxed run leaves some mutants "not checked": they count nowhere but in "not run"
    checked = [n for n in after if after[n] != "not checked"]
    total = len(checked)
    killed_before = sum(before.get(n) in KILLED for n in checked)
    killed_after = sum(after[n] in KILLED for n in checked)
    real = total - len(equivalent)

    def score(killed: int, out_of: int) -> str:
        return f"{killed}/{out_of} = {100 * killed / out_of:.1f}%"

    modules = sorted({_file(n) for n in after})
    per_module = []
    for module in modules:
        names = [n for n in after if _file(n) == module]
        run = [n for n in names if n in checked]
        per_module.append(
            [
                module,
                str(len(names)),
                str(len(names) - len(run)),
                str(sum(before.get(n) in KILLED for n in run)),
                str(sum(after[n] in KILLED for n in run)),
                str(sum(n in equivalent for n in run)),
                str(sum(after[n] not in KILLED and n not in equivalent for n in run)),
            ]
        )
    alive = [n for n in checked if after[n] not in KILLED]
    new_kills = [n for n in checked if after[n] in KILLED and before.get(n) not in KILLED]

    def row(name: str, last: str) -> list[str]:
        d = described[name]
        return [f"{d['file']}:{d['line']}", d["function"], _diff_cell(d["diff"]), last]

    lines = [
        "# Mutation testing of the core",
        "",
        "Generated by `scripts/mutation_report.py` (do not edit by hand; annotate survivors in",
        "`scripts/mutation_notes.py` and rerun `--report-only`).",
        "",
        f"- Tester: mutmut {__version__}, config in pyproject.toml `[tool.mutmut]`; mutmut mutates",
        "  the bodies of functions and methods (module-level constants such as `NORM_FLOOR`,",
        "  `SCOPES` or `ALIASES` are not mutated).",
        f"- Source: src/ as of commit {_git('log', '-1', '--format=%h', '--', 'src')}; runs "
        f"recorded at branch commits {baseline['commit']} (baseline) / {results['commit']} "
        f"(after), {baseline['date']} / {results['date']}.",
        f"- Mutated: {', '.join(m for m in modules)}.",
        "- Tests: " + ", ".join(f"`{t}`" for t in results["tests"]) + ".",
        f"- Settings: {results['workers']} workers, `nice -n {results['nice']}`, "
        f"hypothesis capped at {results['max_examples']} examples per property test, "
        "no shrinking, `-x`, `-p no:cacheprovider`; each mutant runs only the tests that",
        "  reached its function in the clean run.",
        f"- Time: baseline {baseline['seconds'] / 60:.1f} min wall for "
        f"{sum(s != 'not checked' for s in before.values())} of the {baseline['mutants']} "
        f"mutants; rerun of the {results['rerun']} mutants it "
        f"left alive {results['seconds'] / 60:.1f} min wall"
        + (
            f"; test_ddp.py against distributed.py {results['ddp_seconds'] / 60:.1f} min"
            if results.get("ddp_seconds")
            else ""
        )
        + ". "
        + results.get("machine", ""),
        "",
        "Reproduce (about the time above on a 2-core machine):",
        "",
        "```",
        'pip install "mutmut>=3.8,<4"   # or: pip install -e ".[dev]"',
        "python scripts/mutation_report.py --baseline   # every mutant, without the contract tests",
        "python scripts/mutation_report.py              # rerun the survivors with every test",
        "# time-boxed: stop either step, then continue it, all or per module, e.g.",
        "python scripts/mutation_report.py --baseline --resume --only 'advnlp.registry.*'",
        "python scripts/mutation_report.py --resume --only 'advnlp.registry.*'",
        "```",
        "",
        "## Score",
        "",
        "Killed = killed, timed out or crashed. Equivalent mutants (listed below, each with its",
        "reason) cannot be killed by any test and are left out of the second figure.",
        "",
        f"- Before tests/test_core_contracts.py: {score(killed_before, total)} of the mutants "
        f"run, {score(killed_before, real)} of the non-equivalent ones.",
        f"- After: {score(killed_after, total)} of the mutants run, "
        f"{score(killed_after, real)} of the non-equivalent ones.",
        f"- Not run (time-boxed): {len(after) - total} of {len(after)} mutants.",
        "",
        *_table(
            per_module,
            ["module", "mutants", "not run", "killed before", "killed after", "equivalent", "open"],
        ),
        "",
        "## Choices",
        "",
        *[f"- {decision}" for decision in DECISIONS],
        "",
        "## What the survivors revealed in the code",
        "",
        *[f"- {finding}" for finding in FINDINGS],
        "",
        f"## Killed by the new tests ({len(new_kills)})",
        "",
        *_table(
            [
                row(n, ", ".join(t.split("::")[-1] for t in killers.get(n, [])) or after[n])
                for n in new_kills
            ],
            ["where", "function", "mutant", "killed by"],
        ),
        "",
        f"## Equivalent ({len(equivalent)})",
        "",
        *_table(
            [row(n, notes[n][1]) for n in alive if n in equivalent],
            ["where", "function", "mutant", "why no test can kill it"],
        ),
        "",
        f"## Open ({len(alive) - len(equivalent)})",
        "",
        *_table(
            [
                row(n, f"{after[n]}: {notes[n][1] if notes[n] else 'not analysed'}")
                for n in alive
                if n not in equivalent
            ],
            ["where", "function", "mutant", "status"],
        ),
        "",
    ]
    REPORT.write_text("\n".join(lines))
    _say(f"wrote {REPORT.relative_to(ROOT)}")


def _file(name: str) -> str:
    return str(_source_path(name))


def _config_tests() -> list[str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return config["pytest_add_cli_args_test_selection"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="fresh run of every mutant without the contract tests",
    )
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="record the results already under mutants/ (no mutmut run)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a time-boxed run: --baseline runs the mutants it did not reach; the "
        "default step reruns only what is still alive",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=[],
        help="mutant name patterns (fnmatch), e.g. 'advnlp.distributed.*'",
    )
    parser.add_argument(
        "--no-attribution",
        action="store_true",
        help="skip finding which contract test kills each mutant",
    )
    parser.add_argument(
        "--elapsed",
        type=float,
        default=0.0,
        help="with --no-run: the wall seconds of the run being recorded",
    )
    parser.add_argument(
        "--ddp",
        action="store_true",
        help="also run tests/test_ddp.py against distributed.py's survivors",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nice", type=int, default=15)
    parser.add_argument("--max-examples", type=int, default=50)
    args = parser.parse_args()
    os.environ["MUTATION_MAX_EXAMPLES"] = str(args.max_examples)
    REPORTS.mkdir(exist_ok=True)
    stamp = {
        "commit": _git("rev-parse", "--short", "HEAD")
        + ("+dirty" if _git("status", "--porcelain", "src") else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "workers": args.workers,
        "nice": args.nice,
        "max_examples": args.max_examples,
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end.",
    }

    if args.baseline:
        _run_baseline(args, stamp)
        return
    baseline = json.loads(BASELINE.read_text())
    if args.report_only:
        write_report(baseline, json.loads(RESULTS.read_text()))
        return
    _run_after(args, stamp, baseline)


def _matches(name: str, patterns: list[str]) -> bool:
    return not patterns or any(fnmatch.fnmatch(name, p) for p in patterns)


def _run_baseline(args: argparse.Namespace, stamp: dict) -> None:
    """Every mutant (or, with --resume, those the last baseline did not reach), without the
    contract tests."""
    env = _environment(deselect=CONTRACTS)
    if args.resume:
        baseline = json.loads(BASELINE.read_text())
        names = [
            n
            for n, s in baseline["statuses"].items()
            if s == "not checked" and _matches(n, args.only)
        ]
        seconds = args.elapsed
        if not args.no_run and names:
            seconds = _mutmut(["run", f"--max-children={args.workers}", *names], env, args.nice)
        now = _statuses()
        baseline["statuses"].update({n: now[n] for n in names})
        baseline["seconds"] += seconds
    else:
        seconds = args.elapsed
        if not args.no_run:
            subprocess.run(["rm", "-rf", str(ROOT / "mutants")], check=True)
            seconds = _mutmut(["run", f"--max-children={args.workers}"], env, args.nice)
        statuses = _statuses()
        baseline = {
            **stamp,
            "seconds": seconds,
            "mutants": len(statuses),
            "statuses": statuses,
            "tests": [t for t in _config_tests() if t != CONTRACTS],
        }
    BASELINE.write_text(json.dumps(baseline, indent=1, ensure_ascii=False) + "\n")
    _say(f"baseline: {Counter(baseline['statuses'].values())}")


def _run_after(args: argparse.Namespace, stamp: dict, baseline: dict) -> None:
    """Rerun, with every test, what the baseline left alive (with --resume: only those not yet
    killed by an earlier rerun, whose time is added to the earlier one's)."""
    before = baseline["statuses"]
    alive_before = [n for n, s in before.items() if s not in KILLED | {"not checked"}]
    previous = json.loads(RESULTS.read_text()) if args.resume and RESULTS.exists() else None
    now = _statuses()
    rerun = [
        n
        for n in alive_before
        if _matches(n, args.only) and not (args.resume and now.get(n) in KILLED)
    ]
    seconds = 0.0
    if not args.no_run and rerun:
        seconds = _mutmut(
            ["run", f"--max-children={args.workers}", *rerun], _environment(), args.nice
        )
    now = _statuses()
    statuses = {**before, **{n: now[n] for n in alive_before if args.resume or n in rerun}}
    results = {
        **stamp,
        # --elapsed: wall time of an earlier, interrupted rerun that left no results file
        "seconds": seconds + args.elapsed + (previous["seconds"] if previous else 0.0),
        "rerun": len(alive_before) if args.resume else len(rerun),
        "statuses": statuses,
        "tests": _config_tests(),
    }
    if args.ddp:
        distributed = [
            n
            for n, s in statuses.items()
            if n.startswith("advnlp.distributed.") and s not in KILLED | {"not checked"}
        ]
        start = time.perf_counter()
        ddp = _run_ddp(distributed, args.nice)
        results["ddp_seconds"] = time.perf_counter() - start
        results["ddp"] = ddp
        statuses.update({n: s for n, s in ddp.items() if s == "killed"})
    changed = [
        n
        for n, s in statuses.items()
        if s != "not checked" and (s not in KILLED or before.get(n) not in KILLED)
    ]
    old = previous.get("described", {}) if previous else {}
    results["described"] = {n: old.get(n) or _describe(n) for n in changed}
    stats = json.loads((ROOT / "mutants" / "mutmut-stats.json").read_text())
    killers = previous.get("killers", {}) if previous else {}
    new_kills = [n for n in changed if statuses[n] in KILLED and n not in killers]
    if not args.no_attribution:
        killers.update(_attribute(new_kills, stats["tests_by_mangled_function_name"]))
    results["killers"] = killers
    RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    _say(f"after: {Counter(statuses.values())}")
    write_report(baseline, results)


if __name__ == "__main__":
    main()
