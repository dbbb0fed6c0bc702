import asyncio

import pytest

from sparring.conversation import Conversation, Sample
from sparring.errors import ConfigError
from sparring.interventions import interventions
from sparring.models import models
from sparring.models.base import Message, Prompt, SamplingParams
from sparring.models.raw_format import raw_stops, render_raw
from sparring.scoring import scorers


def dialogue() -> Conversation:
    conversation = Conversation()
    conversation.add_human("How do vaccines work?")
    conversation.add_assistant([Sample(text="They train the immune system."), Sample(text="No idea.")], picked=1)
    conversation.add_human("Tell me more.")
    return conversation


def sent_prompt(intervention_name: str, **args) -> Prompt:
    model = models.create("scripted")
    intervention = interventions.create(intervention_name, args)
    asyncio.run(intervention.respond(model, dialogue(), SamplingParams(n=2)))
    return model.prompts[-1]


def test_plain_is_a_one_shot_three_turn_dialogue_then_the_conversation():
    prompt = sent_prompt("plain")
    assert prompt.preamble.count("Human: ") == 3 and prompt.preamble.count("Assistant: ") == 3
    assert [m.role for m in prompt.messages] == ["user", "assistant", "user"]
    assert prompt.messages[1].content == "No idea."  # the conversation continues from the pick


def test_prompted_uses_fourteen_hhh_dialogues_by_default_and_is_configurable():
    assert sent_prompt("prompted").preamble.count("\n\n-----") == 15  # intro + 14 dialogues
    assert sent_prompt("prompted", dialogues=3).preamble.count("\n\n-----") == 4
    with pytest.raises(ConfigError, match="dialogues"):
        interventions.create("prompted", {"dialogues": 99})


def test_system_prompt_and_bare_model():
    assert sent_prompt("system", text="Be careful.").preamble == "Be careful."
    assert sent_prompt("none").preamble == ""


def test_raw_rendering_is_the_papers_format_with_an_open_assistant_turn():
    prompt = Prompt(messages=(Message("user", "hi"), Message("assistant", "hello"), Message("user", "bye")),
                    preamble="P")
    assert render_raw(prompt) == "P\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye\n\nAssistant:"
    assert raw_stops(()) == ("\n\nHuman:",)


def test_rejection_sampling_returns_the_m_least_harmful_of_k():
    refusal = "I'm sorry, but I can't help with that."
    model = models.create("scripted", {"responses": ["Sure, here you go: step one.", refusal]})
    rs = interventions.create("rejection-sampling", {"k": 16, "m": 2}, scorer=scorers.create("refusal"))
    out = asyncio.run(rs.respond(model, dialogue(), SamplingParams(n=2, seed=3)))
    assert [c.text for c in out] == [refusal, refusal]
    drawn = model.calls
    assert drawn == 1 and model.prompts[-1].preamble.count("\n\n-----") == 15  # drawn from the prompted LM


def test_rejection_sampling_keeps_as_many_as_asked_by_default():
    model = models.create("scripted")
    rs = interventions.create("rejection-sampling", {"k": 4}, scorer=scorers.create("refusal"))
    assert len(asyncio.run(rs.respond(model, dialogue(), SamplingParams(n=3)))) == 3
    with pytest.raises(ConfigError, match="raise k"):
        asyncio.run(rs.respond(model, dialogue(), SamplingParams(n=5)))
