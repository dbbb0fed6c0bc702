import gzip
import json

import pytest

from sparring.conversation import Conversation, Role, Sample


def test_every_hh_rlhf_transcript_round_trips_exactly(shared_data):
    count = 0
    with gzip.open(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            for text in (row["chosen"], row["rejected"]):
                conversation = Conversation.from_hh(text)
                assert conversation.to_hh() == text
                assert conversation.turns[0].role is Role.HUMAN
                count += 1
    assert count == 2 * 2312


def test_consecutive_same_role_turns_are_kept():
    text = "\n\nHuman: hi\n\nAssistant: one\n\nAssistant: two"
    conversation = Conversation.from_hh(text)
    assert [t.role for t in conversation.turns] == [Role.HUMAN, Role.ASSISTANT, Role.ASSISTANT]
    assert conversation.to_hh() == text


def test_text_before_the_first_marker_is_rejected():
    with pytest.raises(ValueError, match="must start with"):
        Conversation.from_hh("hello\n\nHuman: hi")


def test_all_samples_are_kept_and_the_pick_is_rendered():
    conversation = Conversation(task_description="get a recipe")
    conversation.add_human("Tell me something.")
    conversation.add_assistant([Sample(text="A"), Sample(text="B"), Sample(text="C")], picked=1)
    assert conversation.to_hh() == "\n\nHuman: Tell me something.\n\nAssistant: B"
    assert [s.text for s in conversation.turns[1].others] == ["A", "C"]
    # the pick is the more harmful response: "rejected" in hh-rlhf terms, one pair per other sample
    assert conversation.comparison_pairs() == [
        ("\n\nHuman: Tell me something.\n\nAssistant: A", "\n\nHuman: Tell me something.\n\nAssistant: B"),
        ("\n\nHuman: Tell me something.\n\nAssistant: C", "\n\nHuman: Tell me something.\n\nAssistant: B"),
    ]


def test_pick_must_point_at_a_sample():
    conversation = Conversation()
    with pytest.raises(ValueError, match="outside"):
        conversation.add_assistant([Sample(text="A")], picked=2)


def test_record_serialises_and_parses_back():
    conversation = Conversation(task_description="t", target="x")
    conversation.add_human("q")
    conversation.add_assistant([Sample(text="a", scores={"refusal": 0.0}, flagged={"refusal": False})])
    assert Conversation.model_validate_json(conversation.model_dump_json()) == conversation
