"""Dataset replay: the human side of real red-team data, replayed against new targets.

``hh-rlhf`` replays the human turns of Anthropic's red-team dialogues in order
(the bundled harmless-base test split by default). ``goals`` replays one goal
per conversation from any CSV/JSONL column; ``harmbench``, ``jailbreakbench``
and ``advbench`` are ``goals`` with those files' column names.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sparring.attacks.base import Attack, AttackItem, attacks
from sparring.conversation import Conversation, Role
from sparring.datasets.rows import read_rows, text_field
from sparring.errors import ConfigError, DataFormatError
from sparring.registry import ConfigPath


def require_file(path: Path) -> None:
    """At build time, so the error names the config key (``attacks[0].path``) before any work starts."""
    if not path.is_file():
        raise ConfigError(f"path: file not found: {path}")


def bundled_hh_rlhf() -> Path:
    return Path(str(files("sparring").joinpath("data/hh-rlhf/harmless-base-test.jsonl.gz")))


class HHReplayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: ConfigPath | None = Field(None, description="hh-rlhf JSONL (gz or not); default: the bundled harmless-base test split")
    limit: int | None = Field(24, ge=1, description="dialogues to replay (None: all)")
    offset: int = Field(0, ge=0, description="skip this many eligible dialogues first")
    min_turns: int = Field(1, ge=1, description="only dialogues with at least this many human turns")


@attacks.register("hh-rlhf")
class HHReplay(Attack):
    """Replays the human turns of hh-rlhf red-team dialogues; the opening turn stands in as task description."""

    description = "Replay the human side of hh-rlhf red-team dialogues, turn by turn."
    written_by = "people"
    Config = HHReplayConfig

    def __init__(self, config: HHReplayConfig) -> None:
        self.config = config
        self.path = Path(config.path).expanduser() if config.path else bundled_hh_rlhf()
        require_file(self.path)

    def items(self) -> list[AttackItem]:
        out: list[AttackItem] = []
        eligible = 0
        for number, row in read_rows(self.path):
            text = text_field(self.path, number, row, "chosen")
            try:
                turns = [t.text for t in Conversation.from_hh(text).turns if t.role is Role.HUMAN]
            except ValueError as error:
                raise DataFormatError(f"{self.path}:{number}: field 'chosen': {error}") from None
            if len(turns) < self.config.min_turns:
                continue
            eligible += 1
            if eligible <= self.config.offset:
                continue
            out.append(AttackItem(id=f"line-{number}", task_description=turns[0], human_turns=tuple(turns)))
            if self.config.limit and len(out) >= self.config.limit:
                break
        return out


class GoalsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: ConfigPath = Field(description="CSV/TSV/JSONL file (optionally .gz) with one goal per row")
    column: str = Field("goal", description="the column holding the goal text")
    id_column: str | None = Field(None, description="a column with stable ids; default: the line number")
    where: dict[str, str] = Field(default_factory=dict, description="keep rows whose columns equal these values")
    limit: int | None = Field(None, ge=1)
    offset: int = Field(0, ge=0)


@attacks.register("goals")
class GoalReplay(Attack):
    """One single-turn attack per goal in a file; the goal is both the task description and the human turn."""

    description = "Replay single-turn goals from a CSV/JSONL column."
    Config = GoalsConfig

    def __init__(self, config: GoalsConfig) -> None:
        self.config = config
        self.path = Path(config.path).expanduser()
        require_file(self.path)

    def items(self) -> list[AttackItem]:
        out: list[AttackItem] = []
        kept = 0
        for number, row in read_rows(self.path):
            missing = [column for column in self.config.where if column not in row]
            if missing:
                raise DataFormatError(f"{self.path}:{number}: missing field {missing[0]!r} (used in 'where')")
            if any(row.get(column) != value for column, value in self.config.where.items()):
                continue
            goal = text_field(self.path, number, row, self.config.column)
            kept += 1
            if kept <= self.config.offset:
                continue
            ident = text_field(self.path, number, row, self.config.id_column) if self.config.id_column else f"line-{number}"
            out.append(AttackItem(id=ident, task_description=goal, human_turns=(goal,)))
            if self.config.limit and len(out) >= self.config.limit:
                break
        if not out:
            raise DataFormatError(f"{self.path}: no goals found in column {self.config.column!r}")
        return out


class HarmBenchConfig(GoalsConfig):
    column: str = "Behavior"
    id_column: str | None = "BehaviorID"
    where: dict[str, str] = Field(default_factory=lambda: {"FunctionalCategory": "standard"})


@attacks.register("harmbench")
class HarmBenchReplay(GoalReplay):
    description = "HarmBench behaviours (standard functional category) as single-turn goals."
    Config = HarmBenchConfig


class JailbreakBenchConfig(GoalsConfig):
    column: str = "Goal"
    id_column: str | None = "Index"


@attacks.register("jailbreakbench")
class JailbreakBenchReplay(GoalReplay):
    description = "JailbreakBench JBB-Behaviors goals as single-turn attacks."
    Config = JailbreakBenchConfig


@attacks.register("advbench")
class AdvBenchReplay(GoalReplay):
    description = "AdvBench harmful behaviours (column 'goal') as single-turn goals."
    Config = GoalsConfig
