"""The README's two opening commands, and CI running the same test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> dict[str, str]:
    """The first bash block of the README: each command under its comment line."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None, "the README opens with a bash block"
    commands: dict[str, str] = {}
    comment = ""
    for line in block.group(1).splitlines():
        if line.startswith("#"):
            comment = line.lstrip("# ").lower()
        elif line.strip():
            commands[comment] = line.strip()
    return commands


def test_readme_opens_with_the_main_job_and_the_tests() -> None:
    commands = _readme_commands()
    main_job = next(c for k, c in commands.items() if "main job" in k)
    tests = next(c for k, c in commands.items() if "tests" in k)
    assert main_job.startswith("pip install") and "examples/quickstart.py" in main_job
    assert tests.startswith("pip install") and tests.endswith("pytest")
    assert (ROOT / "examples" / "quickstart.py").is_file()


def test_ci_runs_the_readmes_test_command_word_for_word() -> None:
    tests = next(c for k, c in _readme_commands().items() if "tests" in k)
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"{{ {tests}; }} || exit 1" in ci
    assert re.search(r"torch==[\d.]+ torchvision==[\d.]+", tests), "the test command pins torch"
