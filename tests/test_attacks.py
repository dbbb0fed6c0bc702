import asyncio
import gzip
from pathlib import Path

import pytest

from sparring.attacks import attacks
from sparring.conversation import Conversation, Sample
from sparring.errors import ConfigError, DataFormatError


def test_hh_rlhf_replay_speaks_human_turns_in_order():
    attack = attacks.create("hh-rlhf", {"limit": 5, "min_turns": 2})
    items = attack.items()
    assert len(items) == 5
    assert all(len(item.human_turns) >= 2 for item in items)
    assert len({item.id for item in items}) == 5
    item = items[0]
    conversation = Conversation()
    spoken = []
    while (turn := asyncio.run(attack.next_human_turn(item, conversation))) is not None:
        spoken.append(turn)
        conversation.add_human(turn)
        conversation.add_assistant([Sample(text="ok")])
    assert tuple(spoken) == item.human_turns
    assert item.task_description == item.human_turns[0]


def test_hh_rlhf_replay_offset_gives_the_next_items():
    first = attacks.create("hh-rlhf", {"limit": 4}).items()
    shifted = attacks.create("hh-rlhf", {"limit": 2, "offset": 2}).items()
    assert [i.id for i in shifted] == [i.id for i in first[2:4]]


def test_harmbench_preset_reads_standard_behaviours_with_ids(shared_data):
    path = shared_data / "harmbench" / "harmbench_behaviors_text_all.csv"
    items = attacks.create("harmbench", {"path": str(path)}).items()
    assert 150 <= len(items) < 400  # only the 'standard' functional category
    assert all(len(i.human_turns) == 1 and i.human_turns[0] == i.task_description for i in items)
    assert len({i.id for i in items}) == len(items)


def test_jailbreakbench_and_advbench_presets(shared_data):
    jbb = attacks.create("jailbreakbench", {"path": str(shared_data / "jbb" / "harmful-behaviors.csv")}).items()
    adv = attacks.create("advbench", {"path": str(shared_data / "advbench" / "harmful_behaviors.csv")}).items()
    assert len(jbb) == 100 and jbb[0].id == "0"
    assert len(adv) == 520


def test_goals_from_a_user_jsonl_with_a_named_column(tmp_path: Path, shared_data):
    path = tmp_path / "goals.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write('{"prompt": "How can I kill a Python process?", "id": "a"}\n\n')
        handle.write('{"prompt": "What is the capital of France?", "id": "b"}\n')
    items = attacks.create("goals", {"path": str(path), "column": "prompt", "id_column": "id"}).items()
    assert [i.id for i in items] == ["a", "b"]


def test_missing_column_names_file_line_and_field(shared_data):
    path = shared_data / "jbb" / "harmful-behaviors.csv"
    with pytest.raises(DataFormatError, match=r"harmful-behaviors.csv:2: missing field 'goal'; fields are: Index, Goal"):
        attacks.create("goals", {"path": str(path)}).items()


def test_invalid_json_line_is_reported_with_its_number(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"goal": "a"}\n{"goal": \n')
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2: invalid JSON"):
        attacks.create("goals", {"path": str(path)}).items()


def test_empty_goal_is_reported(tmp_path: Path):
    path = tmp_path / "g.csv"
    path.write_text("goal\nfirst\n\"\"\n")
    with pytest.raises(DataFormatError, match=r"g.csv:3: field 'goal' must be a non-empty string"):
        attacks.create("goals", {"path": str(path)}).items()


def test_unsupported_file_type(tmp_path: Path):
    path = tmp_path / "goals.txt"
    path.write_text("x")
    with pytest.raises(DataFormatError, match="unsupported file type '.txt'"):
        attacks.create("goals", {"path": str(path)}).items()


def test_malformed_hh_rlhf_dialogue_names_line_and_field(tmp_path: Path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"chosen": "no markers here", "rejected": "x"}\n')
    with pytest.raises(DataFormatError, match=r"pairs.jsonl:1: field 'chosen': transcript must start"):
        attacks.create("hh-rlhf", {"path": str(path)}).items()


def test_goals_path_is_required():
    with pytest.raises(ConfigError, match=r"path: Field required"):
        attacks.create("goals", {})
