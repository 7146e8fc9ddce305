"""Campaign configuration files (TOML), shared by ``gradfuzz gate`` and campaigns::

    store = ".gradfuzz"        # where failures go (relative to the working directory)
    seed = 7
    budget = "10m"             # optional default for the whole run
    [[targets]]
    target = "examples/seed_ops.py:my_op"
    inputs = ["float64[]"]     # same SPEC strings as the CLI; optional if declared in code
    weight = 1.0               # optional: share of the time budget
    budget = "2m"              # optional: this target's own budget

Unknown keys and malformed values are errors that name the line.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gradfuzz.spec import SpecError, spec_variants

_TOP_KEYS = {"store", "seed", "budget", "targets"}
MIN_BUDGET = 1.0  # seconds: the shortest slice a campaign dispatches, and the least a gate gives a target
_TARGET_KEYS = {"target", "inputs", "weight", "budget"}


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class TargetConfig:
    target: str
    inputs: tuple[str, ...] | None = None  # spec strings (may use symbolic or [*] dimensions)
    weight: float = 1.0
    budget: float | None = None


@dataclass
class CampaignConfig:
    path: Path
    store: Path = Path(".gradfuzz")
    seed: int | None = None
    budget: float | None = None
    targets: list[TargetConfig] = field(default_factory=list)

    def budgets(self, total: float) -> list[float]:
        """Seconds per target: its own budget, or a weighted share of what is left of ``total``."""
        fixed = sum(t.budget for t in self.targets if t.budget is not None)
        weights = sum(t.weight for t in self.targets if t.budget is None) or 1.0
        remaining = max(total - fixed, 0.0)
        return [t.budget if t.budget is not None else remaining * t.weight / weights for t in self.targets]


def load_config(path: str | Path) -> CampaignConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"Cannot read the config {str(path)!r}: {error.strerror or error}.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}.") from None
    lines = text.splitlines()

    def fail(message: str, key: str, block: int | None = None) -> ConfigError:
        return ConfigError(f"{path}:{_line_of(lines, key, block)}: {message}")

    for key in data:
        if key not in _TOP_KEYS:
            raise fail(f"unknown key {key!r}; expected one of {', '.join(sorted(_TOP_KEYS))}.", key)
    config = CampaignConfig(path=path)
    if "store" in data:
        if not isinstance(data["store"], str):
            raise fail("store must be a path string, e.g. store = \".gradfuzz\".", "store")
        if not data["store"].strip() or Path(data["store"]).resolve() == Path(Path.cwd().anchor):
            raise fail(f"store = {data['store']!r} names no directory of its own (empty, or the file system's root); "
                       "name one, e.g. store = \".gradfuzz\".", "store")
        config.store = Path(data["store"])
    if "seed" in data:
        seed = data["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
            raise fail(f"seed must be a whole number from 0 to 2**32 - 1, not {seed!r}.", "seed")
        config.seed = seed
    if "budget" in data:
        config.budget = _budget(data["budget"], lambda message: fail(message, "budget"))
    targets = data.get("targets", [])
    if not isinstance(targets, list) or not targets:
        raise ConfigError(f"{path}: no [[targets]]; add at least one block with target = \"module:attr\".")
    for block, entry in enumerate(targets):
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}:{_line_of(lines, 'targets', None)}: targets must be [[targets]] tables "
                              f"(target = \"module:attr\", ...), not {entry!r}.")
        for key in entry:
            if key not in _TARGET_KEYS:
                raise fail(f"unknown key {key!r} in [[targets]]; expected {', '.join(sorted(_TARGET_KEYS))}.", key, block)
        if not isinstance(entry.get("target"), str) or not entry["target"].strip():
            raise fail("each [[targets]] needs target = \"pkg.module:attr\" or \"path/file.py:attr\""
                       + (", not an empty string." if isinstance(entry.get("target"), str) else "."), "target", block)
        inputs = entry.get("inputs")
        if inputs is not None:
            if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
                raise fail("inputs must be a list of spec strings, e.g. inputs = [\"float64[]\"].", "inputs", block)
            if not inputs:
                raise fail("inputs = [] gives no argument a spec: list one spec per positional argument, e.g. "
                           "inputs = [\"float64[]\"], or leave inputs out to use the specs declared in code.", "inputs", block)
            try:
                spec_variants(inputs)
                inputs = tuple(inputs)
            except SpecError as error:
                raise fail(str(error), "inputs", block) from None
        weight = entry.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0 < weight < math.inf:
            raise fail(f"weight must be a positive, finite number, not {weight!r}.", "weight", block)
        budget = None
        if "budget" in entry:
            budget = _budget(entry["budget"], lambda message, block=block: fail(message, "budget", block))
        config.targets.append(TargetConfig(entry["target"], inputs, float(weight), budget))
    return config


def _budget(value, fail) -> float:
    """A positive, finite duration ("10m", 600) of at least `MIN_BUDGET`; otherwise the error ``fail``
    makes of a message."""
    from gradfuzz.durations import parse_duration

    if isinstance(value, bool):  # TOML true is not a number of seconds (bool is an int in Python)
        raise fail(f"budget must be a positive, finite duration such as \"10m\", not {str(value).lower()}.")
    try:
        seconds = parse_duration(value)
    except (ValueError, TypeError) as error:
        raise fail(str(error)) from None
    if not 0 < seconds < math.inf:
        raise fail(f"budget must be a positive, finite duration such as \"10m\", not {value!r}.")
    if seconds < MIN_BUDGET:
        raise fail(f"budget = {value!r} is below {MIN_BUDGET:g} s, too short to check anything: give a positive, "
                   "finite duration of at least 1s, such as \"10m\".")
    return seconds


def _line_of(lines: list[str], key: str, block: int | None) -> int:
    """1-based line of ``key`` (inside the block-th [[targets]] table when given)."""
    start, end = 0, len(lines)
    if block is not None:
        headers = [i for i, line in enumerate(lines) if re.match(r"\s*\[\[\s*targets\s*\]\]", line)]
        if block < len(headers):
            start = headers[block]
            end = headers[block + 1] if block + 1 < len(headers) else len(lines)
    else:
        headers = [i for i, line in enumerate(lines) if re.match(r"\s*\[", line)]
        end = headers[0] if headers else len(lines)
    pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
    for i in range(start, end):
        if pattern.match(lines[i]):
            return i + 1
    return start + 1
