"""Short messages without a single word: the training data's words, typos of them, and the encoder's own words."""

from __future__ import annotations

import pytest

from nlu.encoders import load_encoder
from nlu.vocabulary import Vocabulary, common_words, exact_examples, normalise_example, wordless, words

TRAINING = ["hello there", "danke schön", "thanks a lot", "where is my order?", "こんにちは", "谢谢"]


def test_words_lower_cases_and_splits_unspaced_scripts() -> None:
    assert words("Hello, THERE! ND 42") == ["hello", "there", "nd"]
    assert words("谢谢你 ok") == ["谢", "谢", "你", "ok"]
    assert words("ありがとう") == list("ありがとう")
    assert words("??? 123 👍") == []


def test_training_words_typos_repeats_and_compounds_are_known() -> None:
    vocab = Vocabulary.from_texts(TRAINING)
    assert vocab.knows("hello") and vocab.knows("order")
    assert vocab.knows("helo")  # a letter missing
    assert vocab.knows("thnaks")  # two letters swapped
    assert vocab.knows("thankss")  # a letter too many
    assert vocab.knows("hellooooo")  # a letter held down
    assert vocab.knows("dankeschön")  # two known words run together
    assert vocab.knows("谢")
    assert not vocab.knows("asdfgh")
    assert not vocab.knows("xyz")  # short words must match exactly
    assert not vocab.knows("thx")


def test_unknown_short_counts_words_up_to_the_limit() -> None:
    vocab = Vocabulary.from_texts(TRAINING)
    assert vocab.unknown_short("asdfgh", 3)
    assert vocab.unknown_short("kjh lkj qwe", 3)
    assert not vocab.unknown_short("kjh lkj qwe zzz", 3)  # longer messages are the classifier's
    assert not vocab.unknown_short("hello asdfgh", 3)
    assert not vocab.unknown_short("???", 3)  # no words at all: nothing to judge
    assert not vocab.unknown_short("", 3)


@pytest.mark.parametrize("word", ["awesome", "brilliant", "wunderbar", "genial", "parfait", "ottimo", "duidelijk"])
def test_a_word_of_the_encoders_languages_counts_even_if_the_data_lacks_it(word: str) -> None:
    encoder = load_encoder()
    vocab = Vocabulary.from_texts(TRAINING)
    assert not vocab.knows(word)
    assert Vocabulary(vocab.words, encoder.pieces).knows(word)  # type: ignore[attr-defined]


@pytest.mark.parametrize("mash", ["asdfgh", "qwerty", "jjjjj", "kjhkjh", "sdfsdf", "zxcvbnm", "hjkl", "fjfjfj"])
def test_keyboard_mashing_is_no_word(mash: str) -> None:
    encoder = load_encoder()
    vocab = Vocabulary(Vocabulary.from_texts(TRAINING).words, encoder.pieces)  # type: ignore[attr-defined]
    assert not vocab.knows(mash)


def test_examples_match_exactly_whatever_their_case_punctuation_and_emoji() -> None:
    assert normalise_example("Thanks, BYE!! 👋") == "thanks bye"
    assert normalise_example("谢谢，再见！") == "谢谢再见"
    table = exact_examples([("bye", "goodbye"), ("Thanks, bye!", "goodbye"), ("ok", "affirm"), ("OK!", "thanks"),
                            ("👍", "affirm"), ("?", "deny")])
    # "ok" reads two ways; "👍" is keyed by its pictograph; "?" is nothing to key by.
    assert table == {"bye": "goodbye", "thanks bye": "goodbye", "👍": "affirm"}


def test_a_message_of_pictographs_is_keyed_by_them_without_skin_tones_or_repeats() -> None:
    assert normalise_example("👍🏽👍🏽!") == normalise_example("👍") == "👍"
    assert normalise_example("❤️") == "❤"
    assert normalise_example("...?") == ""


@pytest.mark.parametrize(("text", "expected"), [("?", True), ("...", True), ("😡😡😡", True), ("👍", True), ("", True),
                                                ("ok", False), ("12", False), ("ND-100105", False), ("👍 ok", False)])
def test_wordless_messages_have_neither_a_word_nor_a_number(text: str, expected: bool) -> None:
    assert wordless(text) is expected


MENDING = ["where is my order?", "where is my order", "when will it arrive", "cancel my order please", "thanks",
           "hello", "shipping to germany", "ord de retour", "card cart"]


@pytest.mark.parametrize(("slip", "word"), [
    ("ordr", "order"),  # a letter left out
    ("wher", "where"),  # left out, which beats "when" (a letter mistyped)
    ("cancle", "cancel"),  # two neighbours swapped
    ("thanke", "thanks"),  # one mistyped
    ("shiping", "shipping"),  # a doubled letter typed once
    ("hellooo", "hello"),  # a letter held down
    ("Germny", "germany"),  # case does not matter
])
def test_a_typing_slip_of_a_training_word_is_mended(slip: str, word: str) -> None:
    assert Vocabulary.from_texts(MENDING).mend(slip.casefold()) == word


@pytest.mark.parametrize("word", [
    "order",  # known
    "ord",  # too short to guess
    "carf",  # "card" and "cart" are one slip away (F is next to D and to T) and as common: no guess
    "asdfgh",  # nothing near
    "cards",  # a letter more than a training word is too often a word of its own ("pagare", "pagar")
])
def test_a_word_is_left_alone_when_it_is_known_short_or_ambiguous(word: str) -> None:
    assert Vocabulary.from_texts(MENDING).mend(word) is None


@pytest.mark.parametrize(("word", "training"), [
    ("gestern", ["western union"]),  # German "yesterday": G and W are far apart on a keyboard
    ("wool", ["is it cool"]),  # W and C too
    ("chipped", ["has it shipped"]),
    ("ändere", ["andere farbe"]),  # an accent typed where none belongs is no slip
])
def test_a_letter_far_from_the_training_words_letter_is_no_slip(word: str, training: list[str]) -> None:
    assert Vocabulary.from_texts(training).mend(word) is None


@pytest.mark.parametrize(("slip", "word"), [
    ("thabks", "thanks"),  # B is next to N
    ("ordet", "order"),  # T next to R
    ("andern", "ändern"),  # the accent left off
    ("rembourse", "remboursé"),
    ("retourné", "retournè"),  # the wrong accent
    ("deliviry", "delivery"),  # one vowel for another, as heard
    ("zuruck", "zurück"),
])
def test_a_neighbouring_key_a_missing_accent_or_a_vowel_is_a_slip(slip: str, word: str) -> None:
    assert Vocabulary.from_texts([word, "where is my order"]).mend(slip) == word


def test_a_common_word_of_the_shops_languages_is_no_slip() -> None:
    common = common_words(["en", "de", "es", "ja", "ko"])  # wordfreq reads no Japanese or Korean without extras
    assert common is not None
    assert common("stuck") and common("gestern") and common("unas") and not common("retrun") and not common("recieve")
    vocab = Vocabulary.from_texts(["is it in stock", "where is my order", "return it", "gestirn"])
    assert vocab.mend("stuck") == "stock" and vocab.mend("gestern") == "gestirn"  # one slip away ...
    mending = Vocabulary(vocab.counts, common=common)
    assert mending.mend("stuck") is None and mending.mend("gestern") is None  # ... but words in their own right
    assert mending.correct("my parcel is stuck, wher is my ordr?")[0] == "my parcel is stuck, where is my order?"
    assert mending.mend("retrun") == "return"
    # Dutch is not among the languages here: its "voor" (for) is mended into German "vor".
    assert Vocabulary(Vocabulary.from_texts(["vor dem haus"]).counts, common=common).mend("voor") == "vor"


def test_a_word_the_encoder_knows_whole_is_no_slip() -> None:
    encoder = load_encoder()
    vocab = Vocabulary.from_texts(MENDING)
    assert vocab.mend("oder") == "order"  # one letter from "order" ...
    pieces = encoder.pieces  # type: ignore[attr-defined]
    assert Vocabulary(vocab.counts, pieces).mend("oder") is None  # ... but German for "or"


def test_a_word_of_the_shop_outside_the_training_data_is_spared() -> None:
    # German "Konto" (account) is in the KB articles, not in the training examples; "Kongo" is a country lookup.
    vocab = Vocabulary.from_texts(["wo ist meine Bestellung", "Versand in den Kongo"])
    assert vocab.mend("konto") == "kongo"
    vocab.spare(["konto", "profil"])
    assert vocab.mend("konto") is None and vocab.knows("konto")
    assert vocab.correct("meine Adresse im Konto") == ("meine Adresse im Konto", [])
    assert vocab.mend("bestelung") == "bestellung"  # the training words are still mended to


def test_correct_mends_each_slip_and_says_where() -> None:
    vocab = Vocabulary.from_texts(MENDING)
    text = "Wher is my ordr ND-100555? Shiping to Germny"
    mended, spans = vocab.correct(text)
    assert mended == "Where is my order ND-100555? Shipping to Germany"
    assert [(text[a:b], mended[c:d]) for a, b, c, d in spans] == [
        ("Wher", "Where"), ("ordr", "order"), ("Shiping", "Shipping"), ("Germny", "Germany")]
    assert vocab.correct("where is my order? 谢谢") == ("where is my order? 谢谢", [])
    # Words of an email address, a web address or a code stay as they are.
    assert vocab.correct("ordr: wher.ordr@shiping.com, shiping.com/ordr, ordr2") == (
        "order: wher.ordr@shiping.com, shiping.com/ordr, ordr2", [(0, 4, 0, 5)])


def test_a_letter_held_down_is_no_slip_of_a_one_letter_word() -> None:
    vocab = Vocabulary.from_texts([*MENDING, "j k o"])
    assert vocab.mend("jjjjj") is None and vocab.mend("ooooo") is None


def test_english_chat_shorthand_is_spelt_out_when_asked_for() -> None:
    vocab = Vocabulary.from_texts([*MENDING, "thx"])
    text = "pls help asap, where is my ordr? thx"
    assert vocab.correct(text) == ("pls help asap, where is my order? thx", [(27, 31, 27, 32)])
    mended, spans = vocab.correct(text, shorthand=True)
    assert mended == "please help as soon as possible, where is my order? thanks"
    assert [text[a:b] for a, b, _, _ in spans] == ["pls", "asap", "ordr", "thx"]
    assert vocab.correct("Im Warenkorb", shorthand=True)[0] == "I'm Warenkorb"  # the caller knows the language
