"""The value-level rules of input validation, one definition each, shared by every path.

- Ids: `normalize_ids` strips INVISIBLE characters (Unicode whitespace, control and format characters such as
  zero-width spaces, bidi marks and the byte-order mark) from both ends; nothing inside an id changes and case
  matters (`A1` and `a1` are two ids). The pattern (`ID_EDGES`) is written in the syntax Python's `re` and
  Java's regex (Spark's `regexp_replace`) read alike, so Spark and pandas normalise exactly the same characters.
- Text: a value is empty when nothing but INVISIBLE characters is left (`is_empty_text`).
- Optional columns: NULL_MARKERS (case-insensitive, after stripping) are nulls.
- Timestamps (`parse_timestamps`): exactly two forms, each value judged alone, never against the clock:
  an epoch number (integer or decimal; unit per `InputRules.timestamp_unit`) or ISO-8601
  `YYYY-MM-DD[(T| )hh:mm[:ss[.fraction]]][Z|+hh[:mm]|-hh[:mm]]` (naive text is UTC).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profile_features.config import InputRules

__all__ = [
    "INVISIBLE",
    "INVISIBLE_CHARS",
    "ID_EDGES",
    "NULL_MARKERS",
    "ISO_8601",
    "normalize_ids",
    "is_empty_text",
    "null_markers",
    "numbers",
    "parse_timestamps",
]

# One set of "invisible" characters: C0/C1 controls and DEL, no-break and other Unicode spaces, soft hyphen,
# zero-width characters, bidi marks/embeddings/overrides/isolates, line/paragraph separators, the BOM.
_INVISIBLE_RANGES = (
    (0x00, 0x20), (0x7F, 0xA0), (0xAD, 0xAD), (0x1680, 0x1680), (0x180E, 0x180E), (0x2000, 0x200F),
    (0x2028, 0x202F), (0x205F, 0x2064), (0x2066, 0x206F), (0x3000, 0x3000), (0xFEFF, 0xFEFF),
)  # fmt: skip
INVISIBLE_CHARS = "".join(chr(c) for lo, hi in _INVISIBLE_RANGES for c in range(lo, hi + 1))
# The same set as a regex character class that Python's `re` and Java's regex (Spark) read alike.
INVISIBLE = "[" + "".join(rf"\u{lo:04x}-\u{hi:04x}" for lo, hi in _INVISIBLE_RANGES) + "]"
ID_EDGES = rf"^{INVISIBLE}+|{INVISIBLE}+$"
NULL_MARKERS = ("", "na", "n/a", "nan", "null", "none", "-")
ISO_8601 = (
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[Tt ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?P<z>[Zz]|(?P<sign>[+-])(?P<oh>\d{2})(?::?(?P<om>\d{2}))?)?)?$"
)
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_INTEGER = r"^[+-]?\d+$"
_INFINITE = r"^[+-]?inf(?:inity)?$"
_SCALE = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}  # microseconds per unit (ns: divided by 1000)
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def normalize_ids(values: pd.Series) -> pd.Series:
    """Ids as compared everywhere (duplicates, joins): INVISIBLE characters stripped from both ends."""
    return values.astype("string").str.strip(INVISIBLE_CHARS)


def clean_text(values: pd.Series) -> pd.Series:
    """Text values as kept: stripped like ids, and every line ending inside one (`\\r\\n`, a lone `\\r`)
    read as `\\n`, so a quoted multi-line field holds the same value whatever the file's line endings."""
    return normalize_ids(values).str.replace("\r\n", "\n", regex=False).str.replace("\r", "\n", regex=False)


def is_empty_text(values: pd.Series) -> pd.Series:
    """True where a value is null or holds nothing but INVISIBLE characters."""
    return (normalize_ids(values) == "").fillna(True).astype(bool)


def null_markers(values: pd.Series) -> pd.Series:
    """True where a value is null or a common null marker (NULL_MARKERS, any case, stripped)."""
    return normalize_ids(values).str.lower().isin(NULL_MARKERS).fillna(True).astype(bool) | values.isna()


def numbers(text: pd.Series) -> pd.Series:
    """float64 per value: decimal notation only ('1e400' and 'inf' read as inf); NaN for anything else."""
    text = normalize_ids(text)
    out = pd.Series(np.nan, index=text.index, dtype="float64")
    finite = text.str.fullmatch(_NUMBER).fillna(False).astype(bool)
    if finite.any():
        out[finite] = pd.to_numeric(text[finite].astype(object), errors="coerce").astype("float64")
        overflow = finite & out.isna()  # pandas gives NaN where Python's float() gives inf
        out[overflow] = [float(v) for v in text[overflow]]
    infinite = text.str.fullmatch(_INFINITE, case=False).fillna(False).astype(bool)
    out[infinite] = np.where(text[infinite].str.startswith("-"), -np.inf, np.inf)
    return out


def _micros_bound(moment) -> int:
    return int(pd.Timestamp(moment).value // 1000)


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm), vectorised."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * np.where(m > 2, m - 3, m + 9) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _iso_micros(text: pd.Series) -> pd.Series:
    """Int64 epoch microseconds of ISO-8601 values (fractions beyond microseconds truncated); NA elsewhere."""
    parts = text.str.extract(ISO_8601)
    matched = parts["y"].notna().to_numpy()
    out = pd.Series(pd.NA, index=text.index, dtype="Int64")
    if not matched.any():
        return out
    p = parts[matched]
    num = lambda name, default=0: p[name].fillna(str(default)).astype("int64").to_numpy()  # noqa: E731
    y, mo, d, h, mi, s = num("y"), num("mo"), num("d"), num("h"), num("mi"), num("s")
    frac = p["f"].fillna("").str.ljust(9, "0").str[:6].replace("", "0").astype("int64").to_numpy()
    oh, om = num("oh"), num("om")
    sign = np.where(p["sign"].fillna("+").to_numpy() == "-", -1, 1)
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    month_days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(mo - 1, 0, 11)] + (leap & (mo == 2))
    valid = (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= month_days) & (h < 24) & (mi < 60) & (s < 60)
    valid &= (oh < 24) & (om < 60)
    days = _days_from_civil(y, mo, d)
    seconds = days * 86400 + h * 3600 + mi * 60 + s - sign * (oh * 3600 + om * 60)
    micros = pd.array(np.where(valid, seconds * 1_000_000 + frac, 0), dtype="Int64")
    micros[~valid] = pd.NA
    out[matched] = micros
    return out


class _Epochs:
    """Numeric text parsed once; `micros(unit)` reads it in a unit. Integers are exact (a float would round an
    18-digit nanosecond epoch one way or the other); decimals are doubles rounded to the microsecond."""

    def __init__(self, text: pd.Series, value: pd.Series):
        self.value = value
        self.integer = (text.str.fullmatch(_INTEGER) & (text.str.len() <= 19)).fillna(False).astype(bool)
        self.ints = [int(v) for v in text[self.integer]]

    def micros(self, unit: str) -> pd.Series:
        scale = _SCALE[unit]
        micros = self.value * (scale if scale else 1e-3)
        if self.ints:  # in range, an exact integer is below 2**53, so its float is exact too
            exact = [v * scale if scale else v // 1000 for v in self.ints]
            micros[self.integer] = np.array([float(v) for v in exact], dtype="float64")
        return micros.round()


def parse_timestamps(values: pd.Series, rules: InputRules | None = None) -> tuple[pd.Series, pd.Series]:
    """Parse each value alone (epoch number or ISO-8601) to a UTC microsecond timestamp.

    Numbers are read in `rules.timestamp_unit` (auto: the first of s, ms, us, ns that puts the value in
    range); decimals at double precision, rounded to the microsecond; integers exactly (nanoseconds
    truncated). Nothing outside [timestamp_min, timestamp_max) is converted, whatever the form: an ISO
    date and an epoch of the same out-of-range instant both get "timestamp out of range".

    Returns:
        (timestamps, NaT where rejected; the reason per value, None where accepted).
    """
    rules = rules or InputRules()
    lo, hi = _micros_bound(rules.timestamp_min), _micros_bound(rules.timestamp_max)
    text = normalize_ids(values)
    value = numbers(text)
    is_number = value.notna()
    finite = is_number & np.isfinite(value)
    reason = pd.Series(None, index=values.index, dtype="object")
    micros = pd.Series(np.nan, index=values.index, dtype="float64")
    inside = lambda m: (m >= lo) & (m < hi)  # noqa: E731
    units = list(_SCALE) if rules.timestamp_unit == "auto" else [rules.timestamp_unit]
    epochs = _Epochs(text.where(finite), value.where(finite))
    for unit in units:
        scaled = epochs.micros(unit)
        take = finite & micros.isna() & inside(scaled)
        micros[take] = scaled[take]
    reason[is_number & ~finite] = "timestamp not finite"
    missed = finite & micros.isna()
    reason[missed] = "timestamp out of range"
    if rules.timestamp_unit != "auto":  # say which unit would have read it
        for unit in _SCALE:
            hint = missed & inside(epochs.micros(unit))
            reason[hint] = f"timestamp out of range: looks like {_UNIT_NAMES[unit]} (inputs.rules.timestamp_unit)"
    dated = ~is_number & ~null_markers(text)
    iso = _iso_micros(text.where(dated))
    iso_ok = dated & iso.notna() & inside(iso.astype("float64")).fillna(False)
    reason[dated & iso.isna()] = "unparseable timestamp"
    reason[dated & iso.notna() & ~iso_ok] = "timestamp out of range"
    reason[~is_number & ~dated] = "null timestamp"
    whole = micros.astype("Int64")  # in range and whole, so exact
    whole[iso_ok] = iso[iso_ok]
    instants = np.full(len(whole), np.datetime64("NaT"), dtype="datetime64[us]")
    ok = whole.notna().to_numpy()
    instants[ok] = whole[ok].to_numpy(dtype="int64").astype("datetime64[us]")
    stamps = pd.Series(pd.DatetimeIndex(instants).tz_localize("UTC"), index=values.index)
    return stamps, reason.astype(object).where(reason.notna(), None)
