"""Language identification on shoppers' messages: right language, and no false "not a language we speak".

    python bench/language.py --out bench/results/language.json

Configured-language messages (their language is known): the demo store's KB example questions (locale of the
file), the KB query sets and the sentiment sets. For each: is `detect` right, and does `foreign` stay silent
(a false alarm would hand a shopper we can serve to a person)? Messages in other languages
(bench/data/foreign_language.yml, a tuning set and a held-apart set): does `foreign` name the language?
Also the time per message and the memory the extra detectors take.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from nlu.language import LanguageIdentifier  # noqa: E402

SHOP_LANGUAGES = ("en", "de", "es", "fr", "it", "ja", "zh", "pt", "nl")


def configured_messages() -> list[tuple[str, str]]:
    """(text, language) of messages written in the demo shop's languages."""
    out: list[tuple[str, str]] = []
    for path in sorted((ROOT / "examples" / "demo-store" / "kb").glob("*.md")):
        front = yaml.safe_load(path.read_text(encoding="utf-8").split("---")[1])
        out += [(q, str(front["locale"]).split("-")[0]) for q in front.get("questions") or []]
    for name in ("kb_queries.yml", "kb_dev_queries.yml"):
        for item in yaml.safe_load((ROOT / "bench" / "data" / name).read_text(encoding="utf-8"))["queries"]:
            out.append((item["q"], item["lang"]))
    sentiment = yaml.safe_load((ROOT / "bench" / "data" / "sentiment_heldout.yml").read_text(encoding="utf-8"))
    for lang, groups in sentiment.items():
        out += [(text, lang) for texts in groups.values() for text in texts]
    return [(t, lang) for t, lang in out if lang in SHOP_LANGUAGES]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    identify = LanguageIdentifier(SHOP_LANGUAGES, fallback="en")
    identify.warm_up()
    native = configured_messages()
    rss_before = _rss_mb()

    started = time.perf_counter()
    detected = [identify.detect(text) for text, _ in native]
    detect_ms = (time.perf_counter() - started) * 1000 / len(native)
    alarms = [identify.foreign(text, conf) for (text, _), (_, conf) in zip(native, detected, strict=True)]
    rss_native = _rss_mb()
    # Timed on a second pass: the first one also loads the models of the languages it suspects.
    started = time.perf_counter()
    for (text, _), (_, conf) in zip(native, detected, strict=True):
        identify.foreign(text, conf)
    foreign_ms = (time.perf_counter() - started) * 1000 / len(native)
    wrong = [(text, lang, got) for (text, lang), (got, _) in zip(native, detected, strict=True) if got != lang]
    false_alarms = [(text, lang, other) for (text, lang), other in zip(native, alarms, strict=True) if other]
    per_language: dict[str, Counter[str]] = defaultdict(Counter)
    for (_, lang), (got, _) in zip(native, detected, strict=True):
        per_language[lang]["messages"] += 1
        per_language[lang]["right"] += got == lang

    data = yaml.safe_load((ROOT / "bench" / "data" / "foreign_language.yml").read_text(encoding="utf-8"))
    foreign: dict[str, object] = {}
    for split in ("tuning", "held_apart"):
        items = [(text, lang) for lang, texts in data[split].items() for text in texts]
        named = [identify.foreign(text, identify.detect(text)[1]) for text, _ in items]
        foreign[split] = {
            "messages": len(items),
            "languages": len(data[split]),
            "named_right": sum(got == lang for (_, lang), got in zip(items, named, strict=True)),
            "flagged_as_foreign": sum(got is not None for got in named),
            "misses": [{"text": t, "language": lang, "got": got}
                       for (t, lang), got in zip(items, named, strict=True) if got != lang],
        }

    result = {
        "benchmark": "language",
        "shop_languages": list(SHOP_LANGUAGES),
        "configured_language_messages": len(native),
        "detect_accuracy": round(1 - len(wrong) / len(native), 4),
        "detect_per_language": {lang: round(c["right"] / c["messages"], 4) for lang, c in sorted(per_language.items())},
        "detect_misses": [{"text": t, "language": lang, "got": got} for t, lang, got in wrong[:40]],
        "false_foreign_alarms": len(false_alarms),
        "false_foreign_alarm_samples": [{"text": t, "language": lang, "got": o} for t, lang, o in false_alarms[:20]],
        "foreign": foreign,
        "detect_ms_per_message": round(detect_ms, 3),
        "foreign_check_ms_per_message": round(foreign_ms, 3),
        "peak_rss_mb": round(_rss_mb(), 1),
        # The broad low-accuracy detector, plus the full models of each language `foreign` has suspected so far
        # (about 20-25 MB each): after the configured-language messages, then after the foreign sets too.
        "extra_rss_mb_after_configured_messages": round(rss_native - rss_before, 1),
        "extra_rss_mb_after_foreign_sets": round(_rss_mb() - rss_before, 1),
        "languages_with_full_models_loaded_for_confirming": sorted(identify.confirming_languages()),
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    held = foreign["held_apart"]
    assert isinstance(held, dict)
    print(f"language: {len(native)} configured-language messages, detect accuracy {result['detect_accuracy']:.1%}, "
          f"false foreign alarms {len(false_alarms)}; held-apart foreign messages named {held['named_right']}"
          f"/{held['messages']}; detect {detect_ms:.2f} ms, foreign check {foreign_ms:.2f} ms per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
