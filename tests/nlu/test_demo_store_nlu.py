"""The demo store's NLU: action intents understood in six languages, knowledge questions left to the KB."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.classifier import IntentPrediction
from nlu.model import NLUModel, train_model
from nlu.training_data import load_training_data
from nlu.types import IntentScore

DEMO_DATA = Path(__file__).resolve().parents[2] / "examples" / "demo-store" / "data"
ACTION_INTENTS = {"greet", "goodbye", "thanks", "affirm", "deny", "order_status", "cancel_order", "change_address",
                  "refund_status", "request_invoice", "return_request", "shipping_estimate", "human_handoff",
                  "bot_challenge"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> NLUModel:
    return NLUModel.load(train_model(DEMO_DATA, None, tmp_path_factory.mktemp("demo") / "nlu"))


def test_demo_data_covers_the_engine_intents_with_annotations() -> None:
    data = load_training_data(DEMO_DATA)
    assert ACTION_INTENTS <= set(data.intents)
    annotated = {a.entity for e in data.examples for a in e.entities}
    assert {"order_number", "email", "country"} <= annotated


# Phrasings that are not in the training data.
UNSEEN = [
    ("Hi, where's my package? It's order ND-100777", "order_status"),
    ("Mein Paket ist immer noch nicht da, Bestellung ND-100321", "order_status"),
    ("¿Me pueden decir dónde está mi pedido?", "order_status"),
    ("Je souhaite annuler ma commande ND-100654", "cancel_order"),
    ("住所を間違えたので直したいです", "change_address"),
    ("我想申请退货，衣服太小了", "return_request"),
    ("Could you email me the invoice for ND-100111?", "request_invoice"),
    ("Wann bekomme ich mein Geld für die Rücksendung?", "refund_status"),
    ("How many days does shipping to Sweden take?", "shipping_estimate"),
    ("Ich will mit einem Menschen reden", "human_handoff"),
    ("Are you a robot or a person?", "bot_challenge"),
]
KNOWLEDGE_QUESTIONS = [
    "What is your return policy for sale items?", "Do you charge customs fees for Switzerland?",
    "Welche Zahlungsmethoden akzeptiert ihr?", "¿Los productos tienen garantía?",
    "Quelle est la composition de ce pull ?", "サイズの選び方を教えてください", "你们的衣服是在哪里生产的？",
    "Do you have a discount code for students?",
]


@pytest.mark.parametrize(("text", "intent"), UNSEEN)
def test_action_intents_in_six_languages(demo: NLUModel, text: str, intent: str) -> None:
    result = demo.parse(text)
    assert result.intent == intent, result.ranking[:3]


@pytest.mark.parametrize("text", KNOWLEDGE_QUESTIONS)
def test_knowledge_questions_fall_through_to_the_knowledge_base(demo: NLUModel, text: str) -> None:
    result = demo.parse(text)
    assert result.intent is None, result.ranking[:3]
    assert all(s.name != "out_of_scope" for s in result.ranking)  # nothing to offer as a button


def test_entities_from_a_shipping_question(demo: NLUModel) -> None:
    result = demo.parse("寄到德国要多久？")
    assert result.intent == "shipping_estimate"
    assert result.entity("country") is not None and result.entity("country").value == "DE"  # type: ignore[union-attr]
    assert result.language == "zh"


@pytest.mark.parametrize("text", ["asdfgh", "jjjjj", "kjhkjh lkj", "qwerty", "xyz"])
def test_keyboard_mashing_has_no_intent(demo: NLUModel, text: str) -> None:
    result = demo.parse(text)
    assert result.intent is None, result.ranking[:3]
    assert result.ranking  # the classifier's ranking stays in the trace


# "awesome" is a yes and praise alike ("the lamp arrived, it's beautiful" is thanks); either is small talk, not None.
@pytest.mark.parametrize(("text", "intent"), [("ok", "affirm"), ("cool", "affirm"), ("awesome", "affirm|thanks"),
                                              ("thnaks", "thanks"), ("dankeschön", "thanks"), ("hellooo", "greet"),
                                              ("👍", "affirm"), ("nein danke", "deny")])
def test_short_messages_with_a_real_word_keep_their_intent(demo: NLUModel, text: str, intent: str) -> None:
    result = demo.parse(text)
    assert result.intent in intent.split("|"), result.ranking[:3]


def test_an_order_number_alone_is_not_judged_by_its_words(demo: NLUModel) -> None:
    # "nd" is no word of the data, but the message names an order: the engine asks what to do with it.
    assert not demo._unknown_words("ND-100104")
    assert demo._unknown_words("asdfgh")


@pytest.mark.parametrize(("text", "intent"), [("bye!", "goodbye"), ("Thanks, bye!!", "goodbye"), ("HELLO!!!", "greet"),
                                              ("谢谢！", "thanks")])
def test_a_training_example_with_other_punctuation_is_read_as_that_example(demo: NLUModel, text: str,
                                                                            intent: str) -> None:
    result = demo.parse(text)
    assert (result.intent, result.confidence) == (intent, 1.0)
    assert result.ranking[0].name == intent and len({r.name for r in result.ranking}) == len(result.ranking)


@pytest.mark.parametrize("text", ["?", "...", "!!!", "😡😡😡", "🤔", "🎉🎉"])
def test_a_message_without_words_or_numbers_has_no_intent(demo: NLUModel, text: str) -> None:
    # The encoders place them near the short examples: "😡😡😡" was "yes" at 0.84, "?" at 0.67.
    assert demo.parse(text).intent is None


@pytest.mark.parametrize(("text", "intent"), [("👍", "affirm"), ("👍🏻👍🏻", "affirm"), ("👌", "affirm"), ("👎", "deny"),
                                              ("🙏", "thanks"), ("👋", "greet")])
def test_a_pictograph_of_the_training_data_keeps_its_intent(demo: NLUModel, text: str, intent: str) -> None:
    assert (demo.parse(text).intent, demo.parse(text).confidence) == (intent, 1.0)


@pytest.mark.parametrize("text", ["😡😡😡", "🤬", "where is my order?? 😠", "💢💢"])
def test_angry_faces_are_angry_in_any_language(demo: NLUModel, text: str) -> None:
    assert "angry" in demo.parse(text).sentiment.labels


@pytest.mark.parametrize("text", ["quick question", "Hi! I have a quick question.", "quick one: do you ship to Norway?"])
def test_a_quick_question_is_not_urgent(demo: NLUModel, text: str) -> None:
    # "quick" counted as a time word: "quick question" went to a person as urgent.
    assert "urgent" not in demo.parse(text).sentiment.labels


@pytest.mark.parametrize("text", ["I need it quick, the party is on Friday!", "please be quick, it's urgent"])
def test_quick_as_a_time_word_still_gates_urgency(demo: NLUModel, text: str) -> None:
    assert "urgent" in demo.parse(text).sentiment.labels


@pytest.mark.parametrize("text", ["how do I leave a review?", "I want to leave a 5 star review",
                                  "Where can I write a review?", "Wie kann ich eine Bewertung schreiben?",
                                  "¿Cómo puedo dejar una reseña?",
                                  "Je vais vous mettre cinq étoiles", "在哪里可以写评价？", "我想给你们五星好评"])
def test_praise_and_asking_how_to_review_are_no_threat(demo: NLUModel, text: str) -> None:
    # "I want to leave a 5 star review" was a threat at 0.72: a P1 ticket for a happy shopper.
    assert "threat" not in demo.parse(text).sentiment.labels


@pytest.mark.parametrize("text", ["I will leave a bad review", "I'll post a 1 star review on Trustpilot",
                                  "this deserves 1 star, not 5 stars", "je vais laisser un avis négatif partout"])
def test_bad_review_threats_stay_threats(demo: NLUModel, text: str) -> None:
    assert "threat" in demo.parse(text).sentiment.labels


@pytest.mark.parametrize("text", ["Hello, the vase I received arrived broken.",
                                  "Das Paket kam beschädigt an, die Tasse ist zerbrochen.",
                                  "Ich möchte gerne wissen, ob ich mit PayPal bezahlen kann",
                                  "Quisiera saber si puedo pagar con tarjeta"])
def test_calm_reports_and_payment_questions_raise_no_label(demo: NLUModel, text: str) -> None:
    # A damage report (anger 0.59) went to a person when the anger threshold fell from 0.64 to 0.52 on six new
    # neutral examples; a question about paying by PayPal read as a PayPal claim (threat 0.42).
    assert not demo.parse(text).sentiment.labels


# Damage and wrong-item reports not in the data: a return, not a question about where the order is.
@pytest.mark.parametrize("text", ["the mug came cracked", "la lámpara llegó rota", "商品坏了", "I got the wrong colour",
                                  "the package arrived damaged, what do I do?",
                                  "Le colis est arrivé abîmé, que dois-je faire ?",
                                  "Hola, el paquete llegó dañado, ¿qué hago?"])
def test_a_damaged_or_wrong_item_is_a_return(demo: NLUModel, text: str) -> None:
    assert demo.parse(text).intent == "return_request"


def test_an_out_of_scope_example_stays_out_of_scope(demo: NLUModel) -> None:
    guessed = IntentPrediction("greet", 0.9, 1.0, [IntentScore("greet", 0.9)])  # whatever the classifier said
    assert demo._exact("Tell me a joke!", guessed).intent is None
    assert demo._exact("something else entirely", guessed) is guessed


# A change of size, colour or items in an order, in words not in the data: no address change (it read as one at 0.98
# and the bot asked for the new address).
@pytest.mark.parametrize("text", ["Can I change the size of my order ND-100103?",
                                  "I want to change the color of the lamp in my order",
                                  "Kann ich bei meiner Bestellung die Farbe ändern?",
                                  "¿Puedo cambiar el color de mi pedido?", "Je voudrais changer la taille de ma commande",
                                  "注文した商品の色を変えたいです", "我想把订单里的颜色换一下"])
def test_a_change_of_items_is_no_address_change(demo: NLUModel, text: str) -> None:
    assert demo.parse(text).intent == "change_items"


# Items missing from a parcel, in words not in the data: no damage report, no late parcel (the German one fell back).
@pytest.mark.parametrize("text", ["Ich habe zwei Lampen bestellt, aber nur eine bekommen",
                                  "my parcel arrived but the rug is missing",
                                  "Il pacco è arrivato aperto e manca un articolo"])
def test_items_missing_from_a_parcel(demo: NLUModel, text: str) -> None:
    assert demo.parse(text).intent == "missing_items"


@pytest.mark.parametrize("text", ["I need to change my delivery address", "Ich möchte meine Lieferadresse ändern",
                                  "can I change the shipping address of ND-100104"])
def test_an_address_change_stays_one(demo: NLUModel, text: str) -> None:
    assert demo.parse(text).intent == "change_address"
