"""The corpus of bad inputs (tests/bad_scenarios/manifest.yaml, docs/errors.md): every case exits 2
naming the field, at once, with no traceback, in bounded memory, writing nothing outside --out.

Each case is a ``twin`` process: a child forked by tests/bad_scenarios/runner.py, which imports
torch and the twin once (a fresh interpreter per case would cost ~2 s of imports each) and measures
every child on its own: a hang is killed at TIMEOUT_S, a blow-up at KILL_RSS_KB, and the peak
memory is the child's ``ru_maxrss`` from ``os.wait4``. ``test_the_runner_gives_what_a_fresh_twin_gives``
holds the runner to real ``python -m twin.cli`` processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

CORPUS = Path(__file__).resolve().parent / "bad_scenarios"
MANIFEST = CORPUS / "manifest.yaml"
INFRASTRUCTURE = {"manifest.yaml", "runner.py"}
"""Files of the corpus folder that are not inputs."""
COMMANDS = {"validate", "run", "compare", "optimize", "sweep"}
CLASSES = {
    "non_finite", "bool_as_int", "levels_overflow", "zero_tolerance", "seed_range", "duration_overflow",
    "nonpositive_duration", "unbounded_work", "not_a_scenario", "user_policy", "policy_return", "compare_file",
    "yaml_syntax", "unknown_key", "missing_required", "unknown_unit", "python_tag", "alias_bomb", "duplicate_key",
    "name_escape", "command_line", "sweep_file",
}
"""Every class of bad input the corpus must cover, each at least MIN_PER_CLASS times (docs/errors.md)."""
MIN_PER_CLASS = 3
TIMEOUT_S = 60.0
"""The hang guard: a case still running after this is killed and fails."""
PENDING_TIMEOUT_S = 10.0
"""A case waiting for a fix may hang today; it is expected to fail anyway, so it is stopped sooner."""
MAX_RSS_KB = 10**9 // 1024
"""Peak resident memory a case may reach: 1 GB."""
KILL_RSS_KB = 3 * MAX_RSS_KB
"""A case whose resident memory passes this is killed at once (it has failed; the machine is shared)."""


@dataclass(frozen=True)
class Case:
    id: str
    cls: str
    file: str | None
    command: str
    field: str
    message: str | None = None
    uses: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    pending: str | None = None

    def argv(self, corpus: Path, out: Path) -> list[str]:
        file = str(corpus / self.file) if self.file else ""
        return [token.replace("{file}", file).replace("{out}", str(out)) for token in shlex.split(self.command)]

    @property
    def subcommand(self) -> str:
        return shlex.split(self.command)[0]


def load_cases() -> list[Case]:
    rows = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))["cases"]
    return [Case(id=row["id"], cls=row["class"], file=row["file"], command=row["command"], field=str(row["field"]),
                 message=row.get("message"), uses=tuple(row.get("uses", ())), absent=tuple(row.get("absent", ())),
                 pending=row.get("pending"))
            for row in rows]


CASES = load_cases()


# ---- the runner ----------------------------------------------------------------------------------

@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    maxrss_kb: int
    wall_s: float
    killed: str | None


@dataclass
class Runner:
    """tests/bad_scenarios/runner.py as a subprocess, restarted if it ever dies."""

    env: dict[str, str]
    process: subprocess.Popen[str] | None = field(default=None)

    def _start(self) -> subprocess.Popen[str]:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen([sys.executable, str(CORPUS / "runner.py")], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, env=self.env, text=True)
        return self.process

    def run(self, argv: list[str], cwd: Path, pythonpath: list[Path], timeout: float = TIMEOUT_S,
            kill_rss_kb: int = KILL_RSS_KB) -> Outcome:
        process = self._start()
        request = {"argv": argv, "cwd": str(cwd), "pythonpath": [str(p) for p in pythonpath], "timeout": timeout,
                   "kill_rss_kb": kill_rss_kb}
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        # The runner kills a case at its timeout; this guards against the runner itself hanging
        # (it imports torch first, hence the margin).
        ready, _, _ = select.select([process.stdout], [], [], timeout + 120)
        line = process.stdout.readline() if ready else ""
        if not line:
            self.close()
            pytest.fail(f"the case runner gave no answer for {argv} (it died or hung)")
        return Outcome(**json.loads(line))

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def runner(model_cache: Path) -> Iterator[Runner]:
    """One runner for the module; model_cache (conftest) has set PCM_TWIN_CACHE before it starts."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    instance = Runner(env)
    yield instance
    instance.close()


# ---- the checks ------------------------------------------------------------------------------------

def _snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under root: its kind and, for files, a hash of its content."""
    entries: dict[str, tuple[str, str]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            entries[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            entries[rel] = ("dir", "")
        else:
            entries[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return entries


@dataclass(frozen=True)
class Sandbox:
    root: Path  # pytest's tmp_path: everything the case may see or touch lies here
    corpus: Path  # a copy of tests/bad_scenarios (inputs are never touched in the repository)
    cwd: Path  # two levels down, so that a ../../ name would still land inside root
    out: Path  # the case's --out

    @classmethod
    def make(cls, root: Path) -> Sandbox:
        corpus = root / "corpus"
        shutil.copytree(CORPUS, corpus, ignore=shutil.ignore_patterns("__pycache__"))
        cwd = root / "work" / "cwd"
        cwd.mkdir(parents=True)
        return cls(root, corpus, cwd, root / "out")

    def writable(self, case: Case) -> Path:
        """Where the case may write: its --out, or ./runs/ for a run that names none."""
        return self.out if "{out}" in case.command else self.cwd / "runs"


def problems(case: Case, outcome: Outcome, written: list[str], max_rss_kb: int = MAX_RSS_KB) -> list[str]:
    """Everything wrong with how the twin took a bad input (an empty list: it did right)."""
    found = []
    if outcome.killed:
        found.append(f"killed: {outcome.killed} (after {outcome.wall_s:.1f} s, peak {outcome.maxrss_kb:,} kB)")
    if outcome.rc != 2:
        found.append(f"exit code {outcome.rc}, not 2")
    if case.field not in outcome.stderr:
        found.append(f"stderr does not name {case.field!r}")
    if case.message and case.message not in outcome.stderr:
        found.append(f"stderr does not say {case.message!r}")
    if "Traceback" in outcome.stdout + outcome.stderr:
        found.append("a traceback was printed")
    if outcome.maxrss_kb >= max_rss_kb:
        found.append(f"peak memory {outcome.maxrss_kb:,} kB, over {max_rss_kb:,} kB")
    if written:
        found.append(f"wrote or changed outside its output folder: {written[:5]}")
    found += [f"{path} exists" for path in case.absent if Path(path).exists()]
    return found


def run_case(case: Case, runner: Runner, tmp_path: Path, timeout: float = TIMEOUT_S) -> tuple[Outcome, list[str]]:
    box = Sandbox.make(tmp_path)
    for path in case.absent:
        assert not Path(path).exists(), f"{path} exists before the case: remove it"
    before = _snapshot(tmp_path)
    outcome = runner.run(case.argv(box.corpus, box.out), box.cwd, [box.corpus / "policies"], timeout)
    after = _snapshot(tmp_path)
    allowed = str(box.writable(case).relative_to(tmp_path))
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    written = [p for p in changed if not (p == allowed or p.startswith(allowed + os.sep))
               or p in before]  # an input overwritten or removed is never allowed
    return outcome, written


def _param(case: Case) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=f"pending: {case.pending}")] if case.pending else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_exits_2_naming_the_field(case: Case, runner: Runner, tmp_path: Path) -> None:
    outcome, written = run_case(case, runner, tmp_path, PENDING_TIMEOUT_S if case.pending else TIMEOUT_S)
    found = problems(case, outcome, written)
    assert not found, (f"twin {case.command} ({case.file}): " + "; ".join(found)
                       + f"\n--- stderr ---\n{outcome.stderr[-2000:]}\n--- stdout ---\n{outcome.stdout[-1000:]}")


# ---- the manifest ----------------------------------------------------------------------------------

def test_every_class_has_at_least_three_cases_that_pass_today() -> None:
    counts = Counter(case.cls for case in CASES if not case.pending)
    assert {c.cls for c in CASES} <= CLASSES, f"unknown classes: {sorted({c.cls for c in CASES} - CLASSES)}"
    thin = {cls: counts[cls] for cls in sorted(CLASSES) if counts[cls] < MIN_PER_CLASS}
    assert not thin, f"classes with fewer than {MIN_PER_CLASS} cases: {thin}"
    assert sum(1 for c in CASES if c.file) >= 60


def test_every_file_in_the_folder_is_in_the_manifest_and_every_named_file_exists() -> None:
    named = {p for case in CASES for p in ((case.file,) if case.file else ()) + case.uses}
    missing = sorted(p for p in named if not (CORPUS / p).exists())
    assert not missing, f"the manifest names files that are not there: {missing}"
    files = (str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    inputs = sorted(f for f in files if f not in INFRASTRUCTURE)
    covered = [p for p in inputs if any(p == n or p.startswith(n.rstrip("/") + "/") for n in named)]
    assert sorted(set(inputs) - set(covered)) == [], "files in tests/bad_scenarios/ that no case uses"


def test_manifest_rows_are_well_formed() -> None:
    ids = Counter(case.id for case in CASES)
    assert [i for i, n in ids.items() if n > 1] == []
    for case in CASES:
        assert case.subcommand in COMMANDS, case.id
        assert ("{file}" in case.command) == (case.file is not None), case.id
        writes = case.subcommand != "validate"
        assert not writes or "--out" in shlex.split(case.command) or case.subcommand == "run", \
            f"{case.id}: a {case.subcommand} command must name its --out"
        assert case.field.strip(), case.id


# ---- the runner and the guards ------------------------------------------------------------------

@pytest.mark.parametrize("case_id", ["nonfinite-inf", "policy-import-exits", "compare-seeds-zero"])
def test_the_runner_gives_what_a_fresh_twin_gives(case_id: str, runner: Runner, tmp_path: Path) -> None:
    """The forked child behaves as a real `python -m twin.cli` process: same exit code, same output."""
    case = next(c for c in CASES if c.id == case_id)
    forked, _ = run_case(case, runner, tmp_path / "forked")
    box = Sandbox.make(tmp_path / "fresh")
    paths = [str(box.corpus / "policies")] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=os.pathsep.join(paths))
    fresh = subprocess.run([sys.executable, "-m", "twin.cli", *case.argv(box.corpus, box.out)], cwd=box.cwd, env=env,
                           capture_output=True, text=True, timeout=TIMEOUT_S)

    def normalise(text: str, root: Path) -> str:
        return text.replace(str(root), "<tmp>")

    assert (forked.rc, normalise(forked.stderr, tmp_path / "forked"), normalise(forked.stdout, tmp_path / "forked")) \
        == (fresh.returncode, normalise(fresh.stderr, tmp_path / "fresh"), normalise(fresh.stdout, tmp_path / "fresh"))


def test_the_guards_catch_a_hang_and_a_memory_blowup(runner: Runner, tmp_path: Path) -> None:
    """A case that hangs is killed and fails; one that takes too much memory is measured, or killed
    while it holds it, and fails: here user policy modules that hang or allocate at import."""
    modules = {"hang": "while True:\n    pass\n",
               "hog": "BLOCK = b'x' * 500_000_000\n",
               "hog_and_hold": "import time\nBLOCK = b'x' * 500_000_000\ntime.sleep(60)\n"}
    for name, text in modules.items():
        (tmp_path / f"guard_{name}.py").write_text(text)

    def run(name: str, **limits: Any) -> tuple[Case, Outcome]:
        scenario = tmp_path / f"{name}.yaml"
        scenario.write_text(f"name: guard\npolicy: {{class: 'guard_{name}:Anything'}}\n")
        case = Case(id=name, cls="user_policy", file=None, command="validate", field="policy.class")
        return case, runner.run(["validate", str(scenario)], tmp_path, [tmp_path], **limits)

    case, hang = run("hang", timeout=3)
    assert hang.killed == "timeout" and hang.rc < 0
    assert any(p.startswith("killed: timeout") for p in problems(case, hang, []))
    case, hog = run("hog")  # the child holds its imports and 500 MB more: over a 400 MB limit
    assert hog.killed is None and hog.maxrss_kb > 400_000
    assert any(p.startswith("peak memory") for p in problems(case, hog, [], max_rss_kb=400_000))
    case, held = run("hog_and_hold", kill_rss_kb=300_000)
    assert held.killed == "memory" and held.wall_s < 30
    assert any(p.startswith("killed: memory") for p in problems(case, held, []))


def test_the_sandbox_sees_a_write_outside_the_output_folder(runner: Runner, tmp_path: Path) -> None:
    """A run whose --out leads out of the working directory makes its folder there, then a policy
    bug stops it with exit 2 naming the field: only the write outside fails the case."""
    case = Case(id="escape", cls="name_escape", file="runtime_negative_tile.yaml", uses=("policies/badpol_classes.py",),
                command="run {file} --out ../elsewhere --quiet", field="policy.tiles")
    outcome, written = run_case(case, runner, tmp_path)
    assert outcome.rc == 2 and case.field in outcome.stderr
    assert written and all(p.startswith(os.path.join("work", "elsewhere")) for p in written)
    assert problems(case, outcome, written) == [f"wrote or changed outside its output folder: {written[:5]}"]


@pytest.mark.parametrize("text, ok", [("9223372036854775807 ns", True), ("9223372036854775808 ns", False),
                                      ("292 y", True), ("293 y", False), ("1e18 ns", True), ("1e19 ns", False)])
def test_a_duration_may_reach_the_end_of_the_int64_clock_and_no_further(text: str, ok: bool) -> None:
    from twin.scenario.schema import Scenario, ScenarioError
    try:
        Scenario(name="x").with_overrides([f"policy.interval={text}"])
    except ScenarioError as exc:
        assert not ok and "292 y" in dict(exc.errors)["policy.interval"]
    else:
        assert ok


def test_did_you_mean_suggests_the_closest_key_or_nothing() -> None:
    from twin.scenario.loader import did_you_mean
    assert did_you_mean("polices", ["scenario", "policies", "seeds", "set"]) == "; did you mean 'policies'?"
    assert did_you_mean("zzz", ["scenario", "policies"]) == ""
