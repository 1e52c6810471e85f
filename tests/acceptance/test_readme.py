"""Every command and output in the README, run: the README cannot drift from the code.

Each fenced block of README.md is one of:

- a shell session (lines starting with `$ `): each command is run with bash in the
  folder where a demo is running, and its output must match the lines below it;
- the demo's output, its curl's answer (`json`) and `hl-analytics status`'s table,
  matched against the running demo's;
- a list of commands (lines starting with `hl-analytics ` or `make `): every
  command exists and every option it shows is in its `--help`;
- a diagram (box-drawing characters), which runs nothing;
- a GraphQL operation (```graphql), which must be valid against graph/schema.graphql,
  and the variables shown with it (`variables: {…}`, each followed by its answer),
  which must be JSON naming only variables some README operation declares.

A block that is none of these fails the test, so a new one cannot escape it.

Outputs are compared as a doctest would, after normalising what changes from run
to run: ids, addresses, numbers and dates become placeholders, runs of spaces one
space, and `…` matches anything (a line of `…` alone skips lines). Each expected
line must match an output line, in order; the output may have more lines.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from tests.acceptance.test_demo import STARTUP_LIMIT_S, _next_line, _pump
from tests.acceptance.test_demo_lifeline import free_port
from tests.cli import HL_ANALYTICS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = str(Path(HL_ANALYTICS).parent)


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    info: str
    text: str


def blocks() -> list[Block]:
    found: list[Block] = []
    lines = README.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            start, info = i, lines[i][3:].strip()
            i += 1
            body: list[str] = []
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            found.append(Block(start + 1, info, "\n".join(body)))
        i += 1
    return found


def kind(block: Block) -> str:
    first = block.text.lstrip().splitlines()[0]
    if first.startswith("$ "):
        return "session"
    if first.startswith("Starting PostgreSQL"):
        return "demo"
    if block.info == "json":
        return "answer"
    if first.startswith("Organisations"):
        return "status"
    if first.startswith(("hl-analytics ", "make ")):
        return "commands"
    if any(c in block.text for c in "─│▶▲"):
        return "diagram"
    if block.info == "graphql":
        return "operation"
    if re.match(r"^(\w+, )?variables: ", first):
        return "variables"
    return "unknown"


# -- matching ----------------------------------------------------------------------

_PLACEHOLDERS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"0x[0-9a-f]{40}"), "<address>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}:\d{2})?"), "<date>"),
    (re.compile(r"\d[\d,]*(?:\.\d+)?"), "<n>"),
]


def normalise(line: str) -> str:
    for pattern, placeholder in _PLACEHOLDERS:
        line = pattern.sub(placeholder, line)
    return " ".join(line.split())


def expected_pattern(line: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in normalise(line).split("…")]
    return re.compile(".*".join(parts))


def assert_output_matches(expected: str, actual: str, where: str) -> None:
    wanted = [line for line in expected.splitlines() if line.strip()]
    have = [normalise(line) for line in actual.splitlines() if line.strip()]
    position = 0
    for line in wanted:
        if line.strip() == "…":
            continue
        pattern = expected_pattern(line)
        while position < len(have) and not pattern.fullmatch(have[position]):
            position += 1
        assert position < len(have), (
            f"README line not in the output ({where}):\n  {line}\noutput:\n{actual}"
        )
        position += 1


# -- the running demo ----------------------------------------------------------------


@dataclass
class Demo:
    folder: Path
    port: int
    output: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`hl-analytics demo` in a fresh folder, as the README runs it (its data in
    .hl-analytics there), on a free port in place of 8000."""
    folder = tmp_path_factory.mktemp("readme")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "TEST_DATABASE_URL", "HL_ANALYTICS_DATA_DIR", "JWT_SECRET")
    }
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    port = free_port()
    proc = subprocess.Popen(
        [HL_ANALYTICS, "demo", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    try:
        lines = _pump(proc)
        while "Ctrl-C stops everything" not in (seen[-1] if seen else ""):
            seen.append(_next_line(lines, r".", STARTUP_LIMIT_S))
        yield Demo(folder, port, "".join(seen), env)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)


def run(command: str, demo: Demo, timeout_s: float = 60) -> str:
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=demo.folder,
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return done.stdout + done.stderr


def _readme_blocks(name: str) -> list[Block]:
    return [b for b in blocks() if kind(b) == name]


# -- the tests -------------------------------------------------------------------------


def test_every_block_is_checked() -> None:
    unknown = [b.line for b in blocks() if kind(b) == "unknown"]
    assert unknown == [], f"README blocks at lines {unknown} are run by no test"


def test_the_demos_output(demo: Demo) -> None:
    [block] = _readme_blocks("demo")
    # The README's clone is in /home/me/hl-analytics.
    output = demo.output.replace(str(demo.folder), "/home/me/hl-analytics")
    assert_output_matches(block.text, output, f"README.md:{block.line}")
    assert f"http://127.0.0.1:{demo.port}/graphql" in demo.output


def test_the_curl_the_demo_prints_answers_as_shown(demo: Demo) -> None:
    [block] = _readme_blocks("answer")
    [curl] = [line.strip() for line in demo.output.splitlines() if "curl -s" in line]
    assert_output_matches(block.text, run(curl, demo), f"README.md:{block.line}")


def test_status_in_the_demos_folder(demo: Demo) -> None:
    [block] = _readme_blocks("status")
    assert_output_matches(block.text, run("hl-analytics status", demo), f"README.md:{block.line}")


def _sessions() -> list[Block]:
    return _readme_blocks("session")


@pytest.mark.parametrize("block", _sessions(), ids=lambda b: f"line {b.line}")
def test_shell_session(block: Block, demo: Demo) -> None:
    # Commands, with their continuation lines joined, each followed by what it prints.
    steps: list[tuple[str, list[str]]] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            steps.append((command, []))
        else:
            steps[-1][1].append(line)
        i += 1
    org_id = re.findall(r"Organisation Demo Org \((\S+)\)", demo.output)[0]
    prelude = ""
    for command, expected in steps:
        command = command.replace("localhost:8000", f"127.0.0.1:{demo.port}")
        command = re.sub(r"--org [0-9a-f]+…", f"--org {org_id}", command)
        where = f"README.md:{block.line}: $ {command}"
        if re.match(r"^[A-Z_]+=\$\(", command):  # an assignment: kept for the next commands
            prelude += command + "\n"
            assert run(prelude + 'test -n "${' + command.split("=")[0] + '}"', demo) == "", where
            continue
        if expected and expected[-1].rstrip().endswith("(Ctrl+C stops it)"):
            output = _run_server(command, demo)
        else:
            output = run(prelude + command, demo)
        assert_output_matches("\n".join(expected), output, where)


def _run_server(command: str, demo: Demo) -> str:
    """A command that serves until Ctrl-C: its start-up lines, on a free port."""
    command = re.sub(r"--port \d+", f"--port {free_port()}", command)
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=demo.folder,
        env=demo.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output = _pump(proc)
        seen: list[str] = []
        while not seen or "(Ctrl+C stops it)" not in seen[-1]:
            seen.append(_next_line(output, r".", 120))
        return "".join(seen)
    finally:
        # Only its start-up is checked here: on a loaded machine a Ctrl-C may take
        # longer than the test wants to wait, so a SIGKILL follows.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("block", _readme_blocks("commands"), ids=lambda b: f"line {b.line}")
def test_listed_commands_exist_with_their_options(block: Block) -> None:
    makefile = (ROOT / "Makefile").read_text()
    for line in block.text.splitlines():
        command = line.split("#")[0].strip()
        if not command:
            continue
        words = command.split()
        if words[0] == "make":
            assert re.search(rf"^{words[1]}:", makefile, re.M), line
            continue
        assert words[0] == "hl-analytics", line
        path = [w for w in words[1:] if re.fullmatch(r"[a-z][a-z-]*", w)][:2]
        help_text = subprocess.run(
            [HL_ANALYTICS, *path, "--help"], capture_output=True, text=True, timeout=60
        )
        if help_text.returncode != 0:  # a one-word command followed by an argument
            path = path[:1]
            help_text = subprocess.run(
                [HL_ANALYTICS, *path, "--help"], capture_output=True, text=True, timeout=60
            )
        assert help_text.returncode == 0, (line, help_text.stderr)
        for option in re.findall(r"--[a-z][a-z-]*", command):
            assert option in help_text.stdout, f"{line}: {option} not in `{' '.join(path)} --help`"


@pytest.mark.parametrize("block", _readme_blocks("operation"), ids=lambda b: f"line {b.line}")
def test_example_operations_are_valid_against_the_schema(block: Block) -> None:
    schema = build_schema((ROOT / "graph" / "schema.graphql").read_text())
    errors = validate(schema, parse(block.text))
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize("block", _readme_blocks("variables"), ids=lambda b: f"line {b.line}")
def test_example_variables_are_json_of_declared_variables(block: Block) -> None:
    declared = {
        name for op in _readme_blocks("operation") for name in re.findall(r"\$(\w+)\s*:", op.text)
    }
    lines = [ln for ln in block.text.splitlines() if re.match(r"^(\w+, )?variables: ", ln)]
    assert lines
    for line in lines:
        # A remark may follow the JSON on its line.
        variables, _ = json.JSONDecoder().raw_decode(line.split("variables:", 1)[1].strip())
        assert isinstance(variables, dict) and set(variables) <= declared, variables
