"""Lightweight zh/en/other language identification for short chat messages.
Script counts split Han/other scripts; stopword lexicons and diacritics split English from the rest."""

from __future__ import annotations

import math
import re
from typing import Dict, FrozenSet, Optional, Tuple

__all__ = ["detect_language", "normalize_language_tag"]

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df]")
_KANA = re.compile(r"[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_OTHER_SCRIPTS = re.compile(
    r"[\u0370-\u03ff"  # Greek
    r"\u0400-\u052f"  # Cyrillic
    r"\u0590-\u05ff"  # Hebrew
    r"\u0600-\u06ff\u0750-\u077f"  # Arabic
    r"\u0900-\u0dff"  # Indic scripts
    r"\u0e00-\u0e7f"  # Thai
    r"\u0e80-\u0eff\u1000-\u109f\u10a0-\u10ff\u1780-\u17ff]"  # Lao, Myanmar, Georgian, Khmer
)
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff'’]+")
# The e-mail part is tried only where a token starts ((?<!\S)): `\S+@` tried at every position of a long token without "@" backtracks
# over the rest of it each time, quadratic in the token's length (issue 18).
_URL_OR_MAIL = re.compile(r"(?:https?://|www\.)\S+|(?<!\S)[^\s@]+@\S+\.\w+", re.I)
_CODE = re.compile(r"(?<![A-Za-z0-9./-])[A-Za-z0-9./-]*\d[A-Za-z0-9./-]*")
# Diacritics that never occur in (native) English words, per language family.
_DIACRITIC_HINTS: Dict[str, str] = {
    "fr": "àâçèéêëîïôœùûüÿ",
    "es": "áéíñóúü¿¡",
    "de": "äöüß",
    "pt": "ãõçáâêóôú",
    "it": "àèéìòù",
    "nl": "ëïé",
    "vi": "ăđơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ",
    "pl": "ąćęłńśźż",
    "cs": "čďěňřšťůž",
    "tr": "çğıöşü",
}
_ALL_DIACRITICS = frozenset("".join(_DIACRITIC_HINTS.values()))


def _words(text: str) -> FrozenSet[str]:
    return frozenset(text.split())


_EN = _words(
    """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each few for from further had hadn't has hasn't have
    haven't having he her here hers herself him himself his how i i'm i've i'd i'll if in into
    is isn't it it's its itself just let's me more most my myself no nor not now of off on
    once only or other our ours out over own same she should so some such than that that's the
    their them then there these they this those through to too under until up very was wasn't
    we were weren't what when where which while who whom why will with won't would you your
    yours yourself also still already yet ever never always again maybe please thanks thank
    thx ty pls plz ok okay k yes yeah yep yup nope hi hello hey bye goodbye sorry sure cool
    great fine good bad well hmm lol omg wtf idk btw asap help want need like get got go going
    come coming came know think see look make made take give tell call send check fix fixed
    repair repaired replace replacement broken broke break working work works worked stop
    stopped start started turn turned off on leak leaking leaks noise noisy loud cold hot warm
    cool cooling heat heating water power light display error code shows showing show machine
    unit model order number phone ticket status today tomorrow yesterday morning afternoon
    evening night week weekend month year day time hour minute when technician engineer visit
    appointment book booking schedule reschedule cancel refund warranty service support
    customer complaint bought buy purchase delivered delivery install installation installed
    new old one two three first second last next problem issue question answer again really
    much many still anything something nothing everything can't doesn't won't isn't
    fridge freezer washer dryer dishwasher microwave heater oven stove hood tv television
    air conditioner conditioning aircon remote door filter drain smell smells ice frost
    what's how's where's who's there's here's gonna wanna gotta
    hiya helo yo greetings howdy cya later ttyl farewell cheers tysm brilliant thankyou
    correct right exactly absolutely confirmed definitely alright agreed uh huh nah
    incorrect negative nevermind nvm quit exit abort exchange request operator agent human
    representative address road street avenue room building floor flat district city
    surname name stars star average excellent awesome perfect nice lovely amazing wonderful
    y n u ur r pls morning evening afternoon night noon tonight today tomorrow yesterday
    anyone someone somebody everyone nobody none anybody everything anything would should
    might must shall may can could let lets say said ask asked answer reply wait waiting
    waited late early soon ago since already again back home house near far here there
    this that these those time times people person man woman kid kids family friend
    money price cost costs pay paid charge charged free fee invoice receipt discount
    return returned exchange exchanged parts part spare manual guide instructions app
    account login password email phone number address fix fixing repairs serviced
    serious seriously terrible awful worst useless ridiculous unacceptable angry sue
    really quite pretty much little bit lot lots about around more less than every
    clean cleaning cleaned dirty smell noise sound loud quiet weird strange normal
    """
)
_OTHER: Dict[str, FrozenSet[str]] = {
    "fr": _words(
        """
        le la les un une des du de et est sont pas ne mon ma mes ton ta tes son sa ses notre
        votre nos vos je tu il elle nous vous ils elles avec pour dans sur ce cette ces qui
        que quoi où bonjour bonsoir salut merci oui non très plus marche fonctionne frigo
        réfrigérateur lave-linge machine à laver climatiseur depuis hier demain aujourd'hui
        j'ai c'est n'est au aux mais ou donc car ça cela veux peux voudrais besoin aide panne
        ne plus rien encore toujours quand comment pourquoi s'il vous plaît svp
        """
    ),
    "es": _words(
        """
        el la los las un una unos unas de del y es son no mi mis tu tus su sus que por para
        con en está están estoy hola gracias sí nevera refrigerador lavadora funciona
        funcionando aire acondicionado ayer mañana hoy pero o porque cuando cómo qué
        necesito quiero ayuda roto rota muy más nada también favor por favor buenos buenas
        días tardes noches tengo tiene hace desde ya
        """
    ),
    "de": _words(
        """
        der die das den dem des und ist sind nicht kein keine ein eine einen mein meine
        dein ich du er sie es wir ihr hallo danke bitte ja nein kühlschrank waschmaschine
        funktioniert geht mehr mit für auf aus bei von zu im am seit gestern morgen heute
        aber oder weil wann wie was warum kaputt sehr auch noch schon habe hat haben
        guten tag klimaanlage
        """
    ),
    "it": _words(
        """
        il lo la gli le un uno una di da in con su per tra fra e è non mio mia miei mie
        ciao grazie sì frigorifero lavatrice funziona più ieri domani oggi ma o perché
        quando come cosa ho ha sono buongiorno buonasera aiuto rotto molto anche
        """
    ),
    "pt": _words(
        """
        o a os as um uma de do da dos das e é não meu minha olá obrigado obrigada sim
        geladeira máquina lavar funciona mais ontem amanhã hoje mas ou porque quando como
        que tenho tem está estou bom dia boa tarde ajuda quebrado quebrou muito também
        """
    ),
    "nl": _words(
        """
        de het een en is niet mijn ik jij je hij zij wij hallo dank bedankt ja nee
        koelkast wasmachine werkt meer met voor op uit bij van te gisteren morgen
        vandaag maar of omdat wanneer hoe wat waarom kapot heel ook nog al heb
        """
    ),
    "id": _words(
        """
        saya tidak ini itu apa ada dan yang di ke dari untuk dengan kulkas mesin cuci
        rusak terima kasih tolong bisa mau sudah belum kapan bagaimana kenapa halo selamat
        pagi siang malam
        """
    ),
}


def normalize_language_tag(tag: object) -> Optional[str]:
    """Maps a BCP-47-ish tag ("zh-hans", "zh_CN", "en-GB", "EN") to "zh"/"en"/None."""
    if not isinstance(tag, str):
        return None
    base = re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0]
    if base in ("zh", "cmn", "yue", "chi", "zho"):
        return "zh"
    if base in ("en", "eng"):
        return "en"
    return None


def _squash(evidence: float, scale: float) -> float:
    return 1.0 - math.exp(-evidence / scale)


_PINYIN_SYLLABLE = (
    r"(?:[bpmfdtnlgkhjqxrzcsyw]|zh|ch|sh)?"
    r"(?:iang|iong|uang|ang|eng|ing|ong|ian|iao|uai|uan|ai|ei|ao|ou|an|en|in|un|ia|ie"
    r"|iu|ua|uo|ui|ve|er|a|o|e|i|u|v)"
)
_PINYIN_WORD = re.compile(rf"^(?:{_PINYIN_SYLLABLE}){{1,4}}$")


def _lookup_form(tok: str) -> str:
    """Collapses elongations ("hellooo", "heyyy") to a dictionary form when possible."""
    if tok in _EN or any(tok in lex for lex in _OTHER.values()):
        return tok
    for candidate in (re.sub(r"(.)\1{2,}", r"\1\1", tok), re.sub(r"(.)\1+", r"\1", tok)):
        if candidate in _EN:
            return candidate
    return tok


def _latin_decision(text: str) -> Tuple[Optional[str], float, float]:
    """Returns (code, confidence, number of Latin words) for the Latin part of text."""
    tokens = [t.strip("'’").lower() for t in _LATIN_WORD.findall(text)]
    tokens = [_lookup_form(t) for t in tokens if t]
    if not tokens:
        return None, 0.0, 0.0
    en_score = 0.0
    other_scores: Dict[str, float] = {lang: 0.0 for lang in [*_OTHER, *_DIACRITIC_HINTS]}
    unknown = 0
    for tok in tokens:
        langs = [lang for lang, lex in _OTHER.items() if tok in lex]
        in_en = tok in _EN
        n = len(langs) + (1 if in_en else 0)
        if n == 0:
            unknown += 1
            continue
        # ambiguous words split their vote; English gets a small bias on ties
        share = 1.0 / n
        if in_en:
            en_score += share * (1.15 if n > 1 else 1.0)
        for lang in langs:
            other_scores[lang] += share
        diacritics = sum(ch in _ALL_DIACRITICS for ch in tok)
        if diacritics and not in_en:
            for lang, chars in _DIACRITIC_HINTS.items():
                if any(ch in chars for ch in tok):
                    other_scores[lang] += 0.5
    # diacritics on words unknown to every lexicon still point away from English
    for tok in tokens:
        if tok not in _EN and not any(tok in lex for lex in _OTHER.values()):
            for lang, chars in _DIACRITIC_HINTS.items():
                if any(ch in chars for ch in tok):
                    other_scores[lang] += 0.6
    best_other = max(other_scores.values())
    n_tokens = len(tokens)
    if en_score == 0 and best_other == 0:
        # only unknown words (names, brands, typos, pinyin): in a zh/en bot plain ASCII
        # words are most likely English; romanised Chinese stays below 0.5
        if all(_PINYIN_WORD.match(t) for t in tokens):
            return "en", 0.35, n_tokens
        if all(t.isascii() for t in tokens):
            return "en", round(min(0.5 + 0.03 * n_tokens, 0.6), 3), n_tokens
        return "en", 0.35, n_tokens
    if en_score >= best_other:
        margin = (en_score - best_other) / (en_score + best_other + 0.5 * unknown)
        conf = 0.45 + 0.5 * margin * (0.55 + 0.45 * _squash(en_score, 2.0))
        return "en", min(conf + 0.05, 0.99), n_tokens
    margin = (best_other - en_score) / (en_score + best_other + 0.5 * unknown)
    conf = 0.45 + 0.5 * margin * (0.55 + 0.45 * _squash(best_other, 2.0))
    return "other", min(conf + 0.05, 0.99), n_tokens


def detect_language(text: str) -> Tuple[Optional[str], float]:
    """Detects the language of a chat message.

    Returns ``(code, confidence)`` where code is "zh" (Han characters dominate, English
    loanwords like "wifi"/"app" allowed), "en", "other" (another language/script) or
    None when the text has no linguistic content (empty, emoji, punctuation, digits or
    codes only); confidence is in [0, 1] (0.0 for None).
    """
    if not isinstance(text, str):
        return None, 0.0
    text = _URL_OR_MAIL.sub(" ", text)
    han = len(_HAN.findall(text))
    kana = len(_KANA.findall(text))
    hangul = len(_HANGUL.findall(text))
    other_script = len(_OTHER_SCRIPTS.findall(text))
    # drop alphanumeric codes (model numbers, order ids, E4) before counting words; tried from where a code starts
    # only, so that a long run of letters and dots is not rescanned from each of its word boundaries (quadratic)
    latin_text = _CODE.sub(" ", text)
    latin_code, latin_conf, latin_words = _latin_decision(latin_text)

    non_han_foreign = kana + hangul + other_script
    if han == 0 and non_han_foreign == 0 and latin_code is None:
        return None, 0.0

    if kana and kana >= 0.1 * (han + kana):
        return "other", round(min(0.99, 0.6 + 0.39 * _squash(kana, 3.0)), 3)
    if hangul or other_script:
        if hangul + other_script >= max(han, 1.5 * latin_words):
            return "other", round(min(0.99, 0.6 + 0.39 * _squash(hangul + other_script, 4.0)), 3)

    if han:
        # about 1.5 Chinese characters per word
        zh_units = han / 1.5
        if zh_units >= latin_words or han >= 4:
            share = zh_units / (zh_units + latin_words)
            conf = 0.5 + 0.49 * share * (0.5 + 0.5 * _squash(han, 2.0))
            return "zh", round(min(conf, 0.99), 3)
        if latin_code == "en":
            share = latin_words / (zh_units + latin_words)
            return "en", round(max(0.5, min(latin_conf * share + 0.1, 0.95)), 3)
        if latin_code == "other":
            return "other", round(latin_conf * 0.8, 3)

    if latin_code is None:
        return None, 0.0
    return latin_code, round(latin_conf, 3)
