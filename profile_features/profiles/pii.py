"""Detectors for personal data and credentials in free text, each replaced by a placeholder.

What is scrubbed, and the limits of each rule:
  - e-mail addresses -> [email]; URLs (scheme or www.) -> [url];
  - payment card numbers -> [card]: 13-19 digits, optionally grouped by single spaces or dashes,
    starting with 2-6 (Visa, Mastercard, Amex, Discover, JCB, UnionPay, Maestro ranges) and passing
    the Luhn check, so most 16-digit product codes survive (one in ten random ones passes Luhn);
  - IBANs -> [iban]: a known country code, its registered length and the ISO 13616 mod-97 check
    (grouped in fours or not); countries missing from `IBAN_LENGTHS` are not recognised;
  - street addresses -> [address]: "<number> <Capitalised words> <street type>" (Street, Ave, Road,
    ...; with an optional unit, city, state + ZIP or UK postcode), "<Name>straße/-weg/-straat 12",
    "12 rue de la Paix", "Calle Mayor 3" / "Via Roma 10", P.O. boxes. A bare city or postcode, an
    address in words only ("the house by the mill") or a lowercase street name is not caught; a
    title that is an address ("10 Cloverfield Lane") is scrubbed too;
  - phone numbers of 7-15 digits -> [phone] (dates, years and year ranges stay; a digit group that
    is part of a longer one is left for the card rule, not cut in two);
  - credentials -> [secret]: bearer tokens, `sk-` style keys and `api_key=...` / `password: ...`
    assignments.
"""

from __future__ import annotations

import re

__all__ = ["CREDENTIAL", "IBAN_LENGTHS", "luhn_ok", "iban_ok", "scrub_private", "SECRET", "PLACEHOLDERS"]

SECRET = "[secret]"
PLACEHOLDERS = ("[email]", "[url]", "[card]", "[iban]", "[address]", "[phone]", SECRET)

# Lookbehinds start each match at a token's first character only: without them a 50 KB word is
# scanned from every position (quadratic).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\b(?:https?://|ftp://|www\.)[^\s<>\"']+", re.IGNORECASE)
# Credentials: a bearer token, an `sk-` key, or a value assigned to a key/token/password name.
CREDENTIAL = re.compile(
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{6,}|\bsk-[A-Za-z0-9_-]{8,}"
    r"|\b(?:api[_-]?key|access[_-]?token|secret|password|passwd|pwd)\b[\"']?\s*[:=]\s*[\"']?[^\s\"',;]{4,}"
)
# 7 to 15 digits, allowing spaces, dots, dashes and brackets between them, optionally a leading +;
# not the middle of a longer digit group (that is a card's or a code's, judged as a whole).
_PHONE = re.compile(r"(?<![\w+])(?<!\d[\s.-])\+?(?:\d[\s().-]{0,2}){6,14}\d(?![\w])(?![\s.-]?\d)")
# Numbers that look like phones but are not: dates and year ranges ("1995-1997").
_NOT_PHONE = re.compile(
    r"\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}|(?:1[5-9]|20)\d\d\s*[-–/]\s*(?:1[5-9]|20)\d\d"
)
# A run of digit groups joined by single spaces or dashes (a card is judged on its groups).
_DIGIT_RUN = re.compile(r"(?<![\w])(?<!\d[ -])\d+(?:[ -]\d+)*(?![\w])")

# ISO 13616 registry lengths (SWIFT IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})")

_STREET_TYPES = (
    r"Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Terrace|Ter|Way|Close"
    r"|Crescent|Cres|Square|Sq|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Row|Mews|Gardens|Grove|Hill|Walk"
)
_NAME = r"(?:[A-Z][\w'’.-]*|\d+(?:st|nd|rd|th))"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}"
_ADDRESS = re.compile(
    "|".join(
        (
            # 221B Baker Street, Apt 4, London NW1 6XE / 1600 Pennsylvania Ave NW, Washington, DC 20500
            rf"\b\d{{1,5}}[A-Za-z]?(?:-\d{{1,5}})?,?\s+(?:{_NAME}\s+){{1,4}}(?:(?i:{_STREET_TYPES}))\b\.?"
            r"(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
            r"(?:,?\s+(?i:apt|apartment|suite|ste|unit|flat|#)\.?\s*#?\w{1,6})?"
            rf"(?:,\s*[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)?(?:,?\s+(?:[A-Z]{{2}}\s+\d{{5}}(?:-\d{{4}})?|{_UK_POSTCODE})\b)?",
            # Hauptstraße 5, Musterstr. 12a, Kerkstraat 10, Storgatan 3
            r"\b[A-ZÄÖÜÅØÆ][\wäöüßåøæ-]*(?i:straße|strasse|str\.|weg|gasse|allee|platz|damm|ufer|straat|laan"
            r"|gracht|plein|steeg|vej|gade|gatan|gata|veien|vegen|katu|utca|ulica)\s*\d{1,5}[a-zA-Z]?\b",
            # 12 rue de la Paix, 5 avenue des Champs-Élysées
            r"\b\d{1,5}(?:\s*(?:bis|ter))?,?\s+(?i:rue|avenue|boulevard|bd|place|chemin|allée|impasse|quai|route)"
            r"\s+(?:(?i:de|du|des|la|le|l'|d')\s*)*[A-ZÀ-Ý][\w'’-]*(?:\s+[A-ZÀ-Ý][\w'’-]*){0,3}",
            # Calle Mayor 3, Via Roma 10, Rua Augusta 25, Piazza di Spagna, 12
            r"\b(?:Calle|C/|Avenida|Avda\.|Plaza|Paseo|Carrer|Via|Viale|Piazza|Corso|Largo|Rua|Travessa)"
            r"\s+(?:(?i:de|del|la|las|los|dei|della|delle|di|do|da|dos|das)\s+)*[A-ZÀ-Ý][\w'’-]*"
            r"(?:\s+[A-ZÀ-Ý][\w'’-]*){0,3},?\s*(?:n[º°o]\.?\s*)?\d{1,5}[a-zA-Z]?\b",
            # P.O. Box 1234 / PO Box 12
            r"(?i:\bP\.?\s?O\.?\s*Box\s+\d{1,8}\b)",
        )
    )
)


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of a card number's digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _card_like(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


def _cards(match: re.Match) -> str:
    """Cards in a run of digit groups: whole groups of it (at most 19 digits, so linear in the run)."""
    run = match.group(0)
    spans = [m.span() for m in re.finditer(r"\d+", run)]
    out, pos, start = [], 0, 0
    while start < len(spans):
        digits, found = "", None
        for end in range(start, len(spans)):
            digits += run[spans[end][0] : spans[end][1]]
            if len(digits) > 19:
                break
            if _card_like(digits):
                found = end  # the longest from this start
        if found is None:
            start += 1
            continue
        out.append(run[pos : spans[start][0]] + "[card]")
        pos, start = spans[found][1], found + 1
    return "".join(out) + run[pos:]


def iban_ok(candidate: str) -> bool:
    """ISO 13616: the registered length for its country and mod 97 == 1."""
    text = candidate.replace(" ", "").replace("-", "").upper()
    if IBAN_LENGTHS.get(text[:2]) != len(text) or not text.isalnum():
        return False
    rearranged = text[4:] + text[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _scrub_ibans(text: str) -> str:
    out, pos = [], 0
    for match in _IBAN_START.finditer(text):
        if match.start() < pos:
            continue
        length = IBAN_LENGTHS.get(match.group(1).upper())
        if length is None:
            continue
        # Walk `length` alphanumerics from the start, allowing one space or dash between them.
        i, taken = match.start(), 0
        while i < len(text) and taken < length:
            if text[i].isascii() and text[i].isalnum():
                taken, i = taken + 1, i + 1
            elif text[i] in " -" and taken and i + 1 < len(text) and text[i + 1].isalnum():
                i += 1
            else:
                break
        if taken == length and not (i < len(text) and text[i].isalnum()) and iban_ok(text[match.start() : i]):
            out.append(text[pos : match.start()] + "[iban]")
            pos = i
    return "".join(out) + text[pos:]


def _phone(match: re.Match) -> str:
    return match.group(0) if _NOT_PHONE.fullmatch(match.group(0).strip()) else "[phone]"


def scrub_private(text: str) -> str:
    """Every class in the module docstring replaced by its placeholder (order matters: credentials and
    links first, so their digits are not read as cards or phones; IBANs before cards)."""
    text = CREDENTIAL.sub(SECRET, text)
    text = _URL.sub("[url]", _EMAIL.sub("[email]", text))
    text = _scrub_ibans(text)
    text = _DIGIT_RUN.sub(_cards, text)
    text = _ADDRESS.sub("[address]", text)
    return _PHONE.sub(_phone, text)
