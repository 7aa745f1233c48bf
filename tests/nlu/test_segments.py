"""The parts of a message that asks several things (nlu/segments.py)."""

from __future__ import annotations

import pytest

from nlu.segments import (
    MAX_SEGMENTS,
    Segment,
    announces_question,
    asks,
    asks_practice,
    core,
    count_questions,
    direct,
    elliptical,
    is_bare_no,
    lookup_text,
    only_joiners,
    opens_with_interrogative,
    points_back,
    questions,
    says_arrived_damaged,
    says_charged_twice,
    says_not_received,
    split,
    tells_ordering,
    without_help,
)


@pytest.mark.parametrize(("text", "parts"), [
    ("How long does shipping to Germany take, and do I have to pay customs duties?",
     ["How long does shipping to Germany take", "do I have to pay customs duties?"]),
    ("Hi! What payment methods do you accept? Also, can I get a VAT invoice?",
     ["Hi!", "What payment methods do you accept?", "can I get a VAT invoice?"]),
    ("Wie lange dauert der Versand nach Berlin und muss ich Zoll zahlen?",
     ["Wie lange dauert der Versand nach Berlin", "muss ich Zoll zahlen?"]),
    ("Combien de temps pour livrer en France ? Et puis-je payer avec PayPal ?",
     ["Combien de temps pour livrer en France ?", "puis-je payer avec PayPal ?"]),
    ("送料はいくらですか、あと関税はかかりますか？", ["送料はいくらですか", "あと関税はかかりますか？"]),
    ("运费多少？另外要交关税吗？", ["运费多少？", "另外要交关税吗？"]),
    ("where is my order ND-100234. also can i return it", ["where is my order ND-100234.", "can i return it"]),
    ("Hola, ¿cuánto tarda el envío? ¿Y puedo devolver el producto?",
     ["Hola, ¿cuánto tarda el envío?", "¿puedo devolver el producto?"]),
    ("emma.johnson101@example.com. Also, can I pay with Klarna?",
     ["emma.johnson101@example.com.", "can I pay with Klarna?"]),
])
def test_a_message_splits_into_its_questions(text: str, parts: list[str]) -> None:
    assert [p.text for p in split(text)] == parts


@pytest.mark.parametrize("text", [
    "Can I return and exchange the lamp?",  # "and" before no question word joins two verbs
    "Do you ship to the U.S. or only to Europe?",  # an abbreviation's full stop ends no sentence
    "Mr. Smith ordered a lamp, e.g. the blue one.",
    "Livraison en combien de jours ?",  # French "en" is no conjunction
    "I ordered a lamp and a rug",
])
def test_one_question_stays_whole(text: str) -> None:
    assert [p.text for p in split(text)] == [text]
    assert questions(text) == []


def test_which_parts_are_questions() -> None:
    parts = split("I want to return my lamp. How long does a refund take? como devuelvo un producto. 注文はどこですか。"
                  "Est-ce que je dois payer la douane")
    assert [p.question for p in parts] == [False, True, True, True, True]


def test_short_parts_are_left_out_and_long_messages_capped() -> None:
    assert questions("How long do refunds take?") == []  # one part: looked up whole
    assert questions("ND-100104, and how long do refunds take?") == [Segment("how long do refunds take?", True)]
    assert questions("Hi. Do you ship to Japan? Can I pay with PayPal?") == [
        Segment("Do you ship to Japan?", True), Segment("Can I pay with PayPal?", True)]
    # A question of two words is a part of its own, marked short: answered only when the KB is sure of it.
    assert questions("¿Aceptan PayPal? ¿Y dónde está mi paquete?") == [
        Segment("¿Aceptan PayPal?", True, short=True), Segment("¿dónde está mi paquete?", True)]
    assert questions("Thanks a lot. Okay then. Where is my order?") == [
        Segment("Thanks a lot.", False), Segment("Where is my order?", True)]  # "Okay then." asks nothing
    # A part that states a wish is no question but is marked: it is answered like one.
    assert [(p.question, p.wish) for p in split("Where is my order? I also want to change my email.")] == [
        (True, False), (False, True)]
    assert [p.wish for p in split("Hallo. Ich möchte den Newsletter abbestellen. Quiero cambiar mi correo.")] == [
        False, True, True]
    assert [p.wish for p in split("I ordered a lamp. It arrived broken.")] == [False, False]
    assert [p.wish for p in split("我想修改邮箱。另外，运费多少？")] == [True, False]
    assert [p.wish for p in split("送料はいくらですか？メールアドレスを変更したいです。")] == [False, True]
    assert [p.wish for p in split("Where is it? I need help. Please help me with my order.")] == [
        False, False, False]  # too little to look up; "please" is how requests start, not wishes
    long = " ".join(f"Question number {i} is here?" for i in range(10))
    assert len(questions(long)) == MAX_SEGMENTS


@pytest.mark.parametrize(("text", "back"), [
    ("Do you have the oak table in stock? When will it be back?", [False, True]),
    ("送料はいくらですか、あとそれは無料ですか？", [False, True]),
    ("Wie lange dauert der Versand? Gibt es dafür eine Gebühr?", [False, True]),
    ("Est-ce que la livraison est gratuite ? Et est-ce qu'elle est suivie ?", [False, True]),
    ("La livraison est gratuite ? Et il faut payer la douane ?", [False, False]),  # the impersonal "il"
    ("Ist der Versand kostenlos? Und ist er nachverfolgbar?", [False, True]),
    ("Ist der Versand kostenlos? Und gibt es eine Sendungsverfolgung?", [False, False]),  # the impersonal "es"
    ("Is it free to return? How long does a refund take?", [False, False]),  # the first part points nowhere
    ("I want to cancel my order. Do you charge a fee for that?", [False, True]),
    ("Ich möchte stornieren. Wie lange dauert das?", [False, True]),
    ("Ich benötige eine Rechnung für meine Firma. Wie bekomme ich die?", [False, True]),
    ("I need an invoice with VAT for my company. How do I get one?", [False, True]),
    ("Wie lange dauert der Versand? Und wie viel kostet es?", [False, True]),
    ("Ich habe die Lampe bekommen. Kann ich ihn zurückgeben?", [False, True]),
    ("Ich brauche eine Rechnung. Gibt es die Rechnung auch auf Englisch?", [False, False]),  # "die" starts a noun
    ("I ordered a lamp. Is it true that shipping is free?", [False, False]),  # long enough; "that" ends nothing
    # Long enough to name its own topic (returns): looked up, not left to the earlier part.
    ("Where is my lamp? If it arrives damaged, how do I return it?", [False, False]),
])
def test_a_later_part_that_points_back_says_so(text: str, back: list[bool]) -> None:
    assert [p.refers_back for p in split(text)] == back


def test_an_indirect_question_is_the_question_it_wraps() -> None:
    # "I want to know if I can pay with Klarna" matched no article; read as the question it wraps, it does.
    assert direct("i want to know if i can pay with klarna next time") == "i can pay with klarna next time?"
    assert direct("Hi, I would like to know how long shipping to Japan takes.") == "how long shipping to Japan takes?"
    assert direct("Can you tell me when my refund arrives?") == "when my refund arrives?"
    assert direct("Ich möchte gerne wissen, ob ihr nach Norwegen liefert") == "ihr nach Norwegen liefert?"
    assert direct("Quisiera saber cuánto cuesta el envío") == "cuánto cuesta el envío?"
    assert direct("Je voudrais savoir s'il y a des frais de douane") == "il y a des frais de douane?"
    assert direct("vorrei sapere se spedite in Italia") == "spedite in Italia?"
    assert direct("Gostaria de saber se aceitam PayPal") == "aceitam PayPal?"
    assert direct("我想知道运费多少") == "运费多少？"
    assert direct("送料がいくらか知りたいです") == "送料がいくらか"
    # Not indirect questions: left as they are.
    for text in ("I want to know", "I want to return my lamp", "let me know", "Where is my order?", "ich will wissen"):
        assert direct(text) == text
    # A part that wraps a question is a question (it was a wish, and answered only when the KB was sure).
    parts = split("hi i ordered a lamp last week, where is it? also i want to know if i can pay with klarna next time")
    assert [(p.question, p.wish) for p in parts] == [(True, False), (True, False)]


def test_a_plea_for_help_at_the_end_is_not_looked_up() -> None:
    # "..., can you help?" pulled "I paid twice for the same order" away from the payment article (0.98 -> 0.16).
    assert lookup_text("I paid twice for the same order, can you help?") == "I paid twice for the same order"
    assert lookup_text("Ich habe zweimal bezahlt, können Sie mir helfen?") == "Ich habe zweimal bezahlt"
    assert lookup_text("He pagado dos veces, ¿me pueden ayudar?") == "He pagado dos veces"
    assert lookup_text("Ma lampe est cassée, pouvez-vous m'aider ?") == "Ma lampe est cassée"
    assert lookup_text("我付了两次钱，怎么办？") == "我付了两次钱"
    assert lookup_text("二重に請求されました。どうすればいいですか？") == "二重に請求されました"
    assert lookup_text("I want to know if I can pay with PayPal, can you help?") == "I can pay with PayPal?"
    # Nothing left to look up without it, or no plea: as it is.
    for text in ("can you help?", "please help", "Where is my order?", "I need help with my order"):
        assert lookup_text(text) == text
    assert without_help("Thanks, any idea?") == "Thanks, any idea?"


def test_asking_how_it_is_done_after_saying_what_is_wanted_is_a_plea() -> None:
    # "Compré unas cortinas y quiero devolverlas, ¿cómo lo hago?" read as return_request 0.45 (the fallback), 0.97
    # without its last question; the same in each language.
    cases = {
        "Compré unas cortinas y quiero devolverlas, ¿cómo lo hago?": "Compré unas cortinas y quiero devolverlas",
        "I want to return the lamp. How does that work?": "I want to return the lamp",
        "Ich möchte die Lampe zurückgeben. Wie funktioniert das?": "Ich möchte die Lampe zurückgeben",
        "Je voudrais retourner le tapis, comment faire ?": "Je voudrais retourner le tapis",
        "Vorrei restituire il tappeto, come faccio?": "Vorrei restituire il tappeto",
        "Quero devolver o tapete, como faço?": "Quero devolver o tapete",
    }
    for text, asked in cases.items():
        assert without_help(text, how=True) == asked, text
        assert without_help(text) == lookup_text(text) == text  # the KB's example questions ask "how do I …" too
    # Alone, or about a topic of its own, it stays: "how does that work?", "how does express shipping work?".
    for text in ("how does that work?", "How does express shipping work?", "Wie funktioniert die Rücksendung?"):
        assert without_help(text, how=True) == text
    assert [p.refers_back for p in split("I'd like to return the lamp. How does that work?")] == [False, True]


def test_a_plea_for_help_of_its_own_points_back() -> None:
    # "What do I need to do?" after a return request was said to have no answer.
    texts = ["The rug has a different colour. I would like to return it. What do I need to do? Best regards",
             "Bonjour, j'ai reçu ma commande mais il manque un article. Que dois-je faire ?",
             "Das Paket ist beschädigt. Was soll ich jetzt tun?",
             "Me llegó roto el jarrón. ¿Qué tengo que hacer?",
             "注文した商品がまだ届いていません。どうすればいいですか？"]
    for text in texts:
        plea = [p for p in split(text) if p.refers_back]
        assert plea and plea[-1].question, text
    assert not split("What do I need to do to return the lamp? Thanks")[0].refers_back  # it names its topic


def test_a_message_that_points_back() -> None:
    for text in ("how much would that cost me?", "is it safe?", "Und was kostet das?", "それはいくらですか？",
                 "what should I do?", "¿y eso cuánto cuesta?"):
        assert points_back(text), text
    for text in ("how much does express shipping cost?", "Do you accept PayPal?", "Wie lange dauert der Versand?",
                 "can I return something that I bought on sale last month?"):
        assert not points_back(text), text


def test_lines_and_list_items_end_sentences() -> None:
    assert [p.text for p in split("Two questions: 1) how long does shipping to Germany take 2) can I pay with PayPal?")] \
        == ["Two questions:", "how long does shipping to Germany take", "can I pay with PayPal?"]
    assert [(p.text, p.question) for p in split("Hi,\nhow long does shipping take\ncan I pay with PayPal\nThanks")] == [
        ("Hi", False), ("how long does shipping take", True), ("can I pay with PayPal", True), ("Thanks", False)]
    assert [p.text for p in split("- do you ship to Norway\n- do you accept Klarna")] == [
        "do you ship to Norway", "do you accept Klarna"]
    assert [p.text for p in split("order ND-100234 (2 items) is late")] == ["order ND-100234 (2 items) is late"]


@pytest.mark.parametrize("text", [
    "Do you deliver on Saturdays?", "Does the courier call before delivery?", "Liefern Sie auch samstags?",
    "Versendet ihr am Wochenende?", "¿Hacen envíos en fin de semana?", "Livrez-vous le samedi ?",
    "Est-ce que vous livrez le dimanche ?", "Consegnate il sabato?", "Vocês entregam aos sábados?", "你们周六送货吗？",
    "土曜日も配達していますか？", "hi, do you ship on weekends?", "Where do you ship from?", "Von wo aus verschickt ihr?",
    "¿Desde dónde envían?", "D'où expédiez-vous ?", "どこから発送されますか", "你们从哪里发货？",
])
def test_questions_about_what_the_shop_does(text: str) -> None:
    assert asks_practice(text)


@pytest.mark.parametrize("text", [
    "Do you know where my order is?", "Do you ship it today?", "Do you have any update?", "Did you ship my order?",
    "Haben Sie mein Paket verschickt?", "Versenden Sie es heute?", "¿Enviaron mi pedido?",
    "Livrez-vous ma commande demain ?",
    "你们发货了吗？", "いつ発送しますか？", "We deliver on Saturdays.", "Where is my parcel?", "どこにありますか？",
    "Where do you ship my order from?",
])
def test_questions_about_the_shoppers_own_order_or_no_question(text: str) -> None:
    assert not asks_practice(text)


@pytest.mark.parametrize("text", ["no", "No thanks!", "nope, that's all", "Nein danke", "non merci, c'est tout",
                                  "no gracias", "nada más", "いいえ", "不用了，谢谢"])
def test_a_bare_no(text: str) -> None:
    assert is_bare_no(text)


@pytest.mark.parametrize("text", ["no, it's too small", "Nein, die Farbe passt nicht", "no me queda bien",
                                  "wrong size", "不用了，尺寸太小"])
def test_a_no_with_a_reason_is_more_than_a_bare_no(text: str) -> None:
    assert not is_bare_no(text)


@pytest.mark.parametrize(("rest", "alone"), [
    ("and to ?", True), ("Und  ?", True), ("¿y a ?", True), ("は？", True), ("", True),
    ("how long to ?", False), ("do I pay duties in ?", False), ("returns from ?", False),
])
def test_joiners_around_a_destination(rest: str, alone: bool) -> None:
    assert only_joiners(rest) is alone


@pytest.mark.parametrize("text", [
    "I never received my order ND-100142 but the tracking says delivered",
    "it says delivered but I haven't received anything",
    "Ich habe das Paket nicht bekommen",
    "No he recibido mi pedido",
    "je n'ai jamais reçu ma commande",
    "non ho mai ricevuto il pacco",
    "não recebi a encomenda",
    "ik heb mijn pakket niet ontvangen",
    "荷物が届いていません",
    "我没收到包裹",
    "My parcel says delivered but it's not here",
    "el paquete no está aquí",
    "le colis n'est pas là",
    "das Paket ist nicht hier",
])
def test_not_received_is_recognised(text: str) -> None:
    assert says_not_received(text)


@pytest.mark.parametrize("text", [
    "where is my order ND-100142?",
    "I received the lamp, thanks",
    "Ich habe das Paket bekommen, danke",
    "he recibido el pedido",
    "j'ai bien reçu ma commande",
    "荷物が届きました",
    "Is the parcel here?",
    "here is my order number",
])
def test_received_or_a_plain_question_is_not_not_received(text: str) -> None:
    assert not says_not_received(text)


@pytest.mark.parametrize("text", [
    "I paid twice for order ND-100207, can you refund one?", "you charged me twice!", "there are two charges on my card",
    "Ich wurde doppelt belastet", "Sie haben zweimal abgebucht", "me cobraron dos veces el pedido",
    "j'ai été débité deux fois", "on m'a débité en double",
    "mi avete addebitato due volte", "fui cobrado duas vezes", "ik heb twee keer betaald",
    "二重に請求されました", "被重复扣款了",
])
def test_a_payment_taken_twice_is_recognised(text: str) -> None:
    assert says_charged_twice(text)


@pytest.mark.parametrize("text", [
    "I want a refund", "can I pay in two installments?", "I ordered two lamps", "I see a pending charge on my card",
    "please double check my address", "zweimal klingeln bitte", "¿puedo pagar en dos veces?",
    "je paye en deux fois", "j'ai payé en deux fois sans frais", "ho pagato in due volte",
])
def test_other_payment_words_are_no_double_charge(text: str) -> None:
    assert not says_charged_twice(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("Sehr geehrte Damen und Herren,\nbitte senden Sie mir eine Rechnung.\nMit freundlichen Grüßen\nPaul Weber",
     "bitte senden Sie mir eine Rechnung."),
    ("Madame, Monsieur,\nje souhaite annuler ma commande.\nCordialement,\nSofia Russo", "je souhaite annuler ma commande."),
    ("Hello,\n\nwhere is my order?\n\nThanks,\nJia Hui", "where is my order?"),
    ("Geachte heer/mevrouw,\nik wil graag een factuur.\nMet vriendelijke groet,\nEmma de Jong", "ik wil graag een factuur."),
    ("注文の状況を教えてください。\nよろしくお願いします。\n山田", "注文の状況を教えてください。"),
    # Nothing to take away, or nothing left: as it is.
    ("Hi, where is my order?", "Hi, where is my order?"),
    ("Hello, I want to cancel my order please\nThanks", "Hello, I want to cancel my order please"),
    ("ok thanks", "ok thanks"),
    ("Hello\nThanks", "Hello\nThanks"),
])
def test_a_letter_is_read_without_its_salutation_and_closing(text: str, expected: str) -> None:
    assert core(text) == expected


@pytest.mark.parametrize("text", [
    "my order ND-100337 arrived damaged", "the vase came smashed", "The lamp was broken on arrival",
    "meine Bestellung ist beschädigt angekommen", "Das Paket kam beschädigt an, die Tasse ist zerbrochen.",
    "mi pedido llegó dañado", "el jarrón llegó roto", "Bonjour, ma commande ND-100337 est arrivée abîmée",
    "il mio ordine è arrivato danneggiato", "a minha encomenda chegou danificada", "o vaso chegou partido",
    "mijn bestelling is beschadigd aangekomen", "注文ND-100337が破損して届きました", "届いたお皿が割れていました",
    "收到的花瓶碎了",
])
def test_something_that_came_damaged_is_recognised(text: str) -> None:
    assert says_arrived_damaged(text)


@pytest.mark.parametrize("text", [
    "if it arrives damaged, how do I return it?", "my order arrived yesterday", "where is my order?",
    "Si llega dañado, ¿qué hago?", "la commande est arrivée", "wann kommt meine Bestellung an?", "is the vase fragile?",
    "the box was a bit damaged but everything inside is fine", "届きました、ありがとう",
])
def test_arrival_or_a_policy_question_is_not_damage(text: str) -> None:
    assert not says_arrived_damaged(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("how long does a refund take", True), ("whats the return address", True),
    ("combien de temps pour etre rembourse", True), ("hola cuanto tarda el envio a mexico", True),
    ("Hi, how do I track my order", True), ("wie lange dauert die rückerstattung", True),
    ("Can you cancel my order?", True), ("I want to know if I can pay with Klarna", True), ("送料はいくらですか", True),
    ("can you cancel my order", False),  # an auxiliary first: a request
    ("I want to return my lamp", False), ("was charged twice for my order", False), ("ND-100104", False),
])
def test_a_message_asks_with_or_without_a_question_mark(text: str, expected: bool) -> None:
    assert asks(text) is expected


@pytest.mark.parametrize(("text", "within", "expected"), [
    ("And how long do refunds take?", 1, True), ("¿Cómo lo devuelvo?", 1, True), ("Außerdem, wie lange dauert es?", 1, True),
    ("Also can I get an invoice?", 3, False), ("can I get an invoice?", 3, False),
    ("if not, how do I return them?", 1, False), ("if not, how do I return them?", 3, True),
    ("Also, if it arrives damaged, how do I return it?", None, True), ("Also can I get an invoice?", None, False),
])
def test_a_part_that_asks_for_information_opens_with_an_interrogative(text: str, within: int | None,
                                                                      expected: bool) -> None:
    assert opens_with_interrogative(text, within) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Hi, I ordered the blackout curtains last week, order ND-100190.", True),
    ("ich habe letzte Woche eine Lampe bestellt (ND-100104).", True), ("J'ai commandé une lampe (ND-100111).", True),
    ("先週ND-100132を注文しました。", True), ("我上周买了一个台灯", True), ("我买了一个台灯", True),
    ("Mi pedido ND-100143 no llega.", False), ("Where is my order ND-100104?", False),
])
def test_a_sentence_that_tells_the_shopper_ordered(text: str, expected: bool) -> None:
    assert tells_ordering(text) is expected


def test_questions_are_counted_beyond_the_cap_of_parts() -> None:
    nine = " ".join(f"How do I do thing number {i}?" for i in range(9))
    assert len(questions(nine)) == MAX_SEGMENTS
    assert count_questions(nine) == 9
    assert count_questions("Hello, Anna here. I ordered a lamp. Where is it? Thanks!") == 1
    assert count_questions("Thanks. Bye.") == 0


@pytest.mark.parametrize(("text", "expected"), [
    ("and express?", True), ("und per Express?", True), ("et le suivi ?", True), ("¿y a Italia?", True),
    ("and how long does a refund take to reach my card?", False), ("express?", False), ("how much is it?", False),
])
def test_a_short_message_that_goes_on_with_a_joiner_is_elliptical(text: str, expected: bool) -> None:
    assert elliptical(text) is expected


@pytest.mark.parametrize("text", [
    "hello, I have a question about my order", "I need help with my order", "can you help me?", "quick question",
    "Hi! I have a quick question.", "Hallo, ich habe eine Frage zu meiner Bestellung", "ich brauche Hilfe",
    "Hola, tengo una pregunta", "tengo una duda sobre mi pedido", "Bonjour, j'ai une question concernant ma commande",
    "Ciao, ho una domanda", "Olá, tenho uma dúvida", "ik heb een vraag over mijn bestelling", "注文について質問があります",
    "すみません、注文について質問があります", "你好，我想咨询一下订单的问题", "我有个问题",
    "Good morning! I have a problem with my order", "Guten Tag, ich habe eine Frage", "Buenos días, tengo una duda",
])
def test_a_message_that_only_announces_a_question(text: str) -> None:
    assert announces_question(text)


@pytest.mark.parametrize("text", [
    "I have a question about returns: how long do I have?", "I need help with my order ND-100104",
    "can you help me return my lamp?", "quick question, do you ship to Norway?", "where is my order?",
    "I have a problem with the lamp, it flickers",
])
def test_a_message_with_its_question_is_no_announcement(text: str) -> None:
    assert not announces_question(text)
