"""Rasa 3.6 graph components for language detection, rule-based entity extraction and anger scoring.
Use in config.yml as bot.nlu.components.LanguageDetector / StructuredEntityExtractor / AngerScorer."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    METADATA,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.anger import anger_score
from bot.nlu.extract import extract_entities, get_pipeline
from bot.nlu.language import detect_language, normalize_language_tag

logger = logging.getLogger(__name__)

LANGUAGE_DETECTED = "language_detected"
LANGUAGE_HINT = "language_hint"
ANGER = "anger"
_METADATA_LANGUAGE_KEYS = ("language", "language_code")
_MISSING = object()


def _find_language_tag(metadata: Any) -> Optional[Any]:
    """Returns the raw language tag from message metadata, or a sentinel if absent.

    Looks at top-level "language"/"language_code" and, one level down, at the usual
    sender containers of channel payloads ("from", "user", "sender", "message").
    """
    if not isinstance(metadata, dict):
        return _MISSING
    for key in _METADATA_LANGUAGE_KEYS:
        if key in metadata:
            return metadata[key]
    for container in ("from", "user", "sender", "message"):
        nested = metadata.get(container)
        if isinstance(nested, dict):
            for key in _METADATA_LANGUAGE_KEYS:
                if key in nested:
                    return nested[key]
    return _MISSING


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False
)
class LanguageDetector(GraphComponent):
    """Detects the message language (zh/en/other) and exposes it to the tracker.

    Adds a ``language`` entity (start=end=0) for confident zh/en results so a
    ``from_entity`` slot mapping can fill a ``language`` slot, and always sets the
    ``language_detected`` output property. A language tag in the message metadata
    ("language"/"language_code", e.g. Telegram's "zh-hans") becomes the
    ``language_hint`` output property.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """The component's default config."""
        return {
            # minimum confidence for emitting the `language` entity
            "min_confidence": 0.5,
            # name of the emitted entity (and of the slot filled from it)
            "entity_name": "language",
            # set False to only set the `language_detected` property
            "emit_entity": True,
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Creates the component."""
        self._config = {**self.get_default_config(), **config}

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LanguageDetector:
        """Creates a new component (see parent class for full docstring)."""
        return cls(config)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Training data is left untouched (no `language` entities in examples)."""
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        """Detects the language of each message and records it."""
        for message in messages:
            self._process_message(message)
        return messages

    def _process_message(self, message: Message) -> None:
        text = message.get(TEXT)
        if isinstance(text, str):
            code, confidence = detect_language(text)
            confidence = round(float(confidence), 3)
            message.set(
                LANGUAGE_DETECTED,
                {"code": code, "confidence": confidence},
                add_to_output=True,
            )
            if (
                self._config["emit_entity"]
                and code in ("zh", "en")
                and confidence >= self._config["min_confidence"]
            ):
                entity = {
                    ENTITY_ATTRIBUTE_TYPE: self._config["entity_name"],
                    ENTITY_ATTRIBUTE_VALUE: code,
                    ENTITY_ATTRIBUTE_START: 0,
                    ENTITY_ATTRIBUTE_END: 0,
                    "confidence": confidence,
                    EXTRACTOR: self.__class__.__name__,
                }
                message.set(
                    ENTITIES, message.get(ENTITIES, []) + [entity], add_to_output=True
                )

        tag = _find_language_tag(message.get(METADATA))
        if tag is not _MISSING:
            message.set(LANGUAGE_HINT, normalize_language_tag(tag), add_to_output=True)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False
)
class StructuredEntityExtractor(GraphComponent, EntityExtractorMixin):
    """Rule-based extractor for phone, order_id, ticket_number, product_model,
    product and date_time entities (see :func:`bot.nlu.extract.extract_entities`)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """The component's default config."""
        return {
            # restrict to these entity types (None = all)
            "entities": None,
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Creates the component."""
        self._config = {**self.get_default_config(), **config}
        wanted = self._config.get("entities")
        self._wanted = set(wanted) if wanted else set()

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> StructuredEntityExtractor:
        """Creates the component and builds the spaCy pipeline once."""
        get_pipeline()
        return cls(config)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Nothing to learn; training data is returned unchanged."""
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        """Appends extracted entities to each message (existing ones are kept)."""
        for message in messages:
            text = message.get(TEXT)
            if not isinstance(text, str) or not text:
                continue
            existing = list(message.get(ENTITIES, []))
            seen = {
                (e.get(ENTITY_ATTRIBUTE_TYPE), e.get(ENTITY_ATTRIBUTE_START), e.get(ENTITY_ATTRIBUTE_END))
                for e in existing
            }
            new = []
            for ent in self.filter_irrelevant_entities(extract_entities(text), self._wanted):
                key = (ent["entity"], ent["start"], ent["end"])
                if key in seen:
                    continue
                seen.add(key)
                new.append({**ent, "confidence": 1.0})
            message.set(
                ENTITIES, existing + self.add_extractor_name(new), add_to_output=True
            )
        return messages


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False
)
class AngerScorer(GraphComponent):
    """Sets the ``anger`` output property (0..1, 3 decimals) on every message."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """The component's default config."""
        return {"property_name": ANGER, "precision": 3}

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Creates the component."""
        self._config = {**self.get_default_config(), **config}

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> AngerScorer:
        """Creates a new component; the anger classifier (bot/nlu/anger_model.py) is trained here, at start-up,
        not on the first customer message."""
        anger_score("warm up")
        return cls(config)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Training data is returned unchanged."""
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        """Scores each message's text."""
        for message in messages:
            text = message.get(TEXT)
            if not isinstance(text, str):
                continue
            message.set(
                self._config["property_name"],
                round(anger_score(text), int(self._config["precision"])),
                add_to_output=True,
            )
        return messages
