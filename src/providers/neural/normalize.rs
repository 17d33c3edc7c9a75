//! Text normalization for speech: turns what a reader would say aloud (numbers, dates, times,
//! money, units, abbreviations) into words before the text is turned into phonemes.
//!
//! [`normalize`] never loses text: whatever it does not recognise passes through unchanged, and
//! it only rewrites the spans it understands.
//!
//! English rules, in the order they apply:
//! - abbreviations: Mr. Mrs. Ms. Dr. (titles), St. (Saint before a name, Street after one),
//!   vs., etc., e.g., i.e., the month abbreviations Jan.–Dec., and No. before a number;
//! - phone numbers of the clear shapes `555-123-4567`, `(555) 123-4567`, `+44 20 7946 0958`,
//!   read digit by digit;
//! - dates: `2024-03-05`, `March 5, 2024`, `March 5th`, `5 March 2024`;
//! - times: `3:30 pm`, `14:05`, `9am`;
//! - money: `$5`, `$1.50`, `€20`, `£3`, `¥100`, `$2 million`, `5 USD`, `20 EUR`;
//! - percentages, decades (`1990s`), and units after a number (km, kg, m, cm, mm, g, mg, l, ml, mph, km/h, °C, °F,
//!   GB, MB, KB, TB, Hz, kHz, ms, s, min, h), singular for exactly one;
//! - ordinals (`1st`, `22nd`), ranges (`10-20` → "ten to twenty");
//! - everything numeric left: a bare four-digit whole number from 1100 to 2099 is read as a
//!   year ("nineteen ninety-nine", "two thousand five", "twenty twenty-four"), since that is
//!   how such numbers are nearly always meant in running text; other numbers are cardinals
//!   (`1,234,567`, `-5` → "minus five", `3.14` → "three point one four"); numbers with leading
//!   zeros or more than fifteen digits are read digit by digit.
//!
//! Chinese rules: years before 年 are read digit by digit (`2024年` → 二零二四年), `2024-03-05`
//! becomes 二零二四年三月五日, times `14:30` → 十四点三十分, percentages `50%` → 百分之五十,
//! money `¥100` → 一百元 (`$` 美元, `€` 欧元, `£` 英镑), ranges `10-20` → 十到二十, decimals
//! `3.5` → 三点五, units after numbers (km → 公里, kg → 公斤, °C → 摄氏度, …), and every other
//! number as a Chinese cardinal (`123` → 一百二十三, `10` → 十). Long digit strings that look
//! like phone numbers (eleven digits starting with 1, or a leading 0) are read digit by digit.
//! 二 is used throughout (no 两).

use std::sync::LazyLock;

use num2words::Num2Words;
use regex_lite::{Captures, Regex};

/// The language whose reading rules [`normalize`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    English,
    Chinese,
}

impl Lang {
    /// The language for a BCP 47 style tag (`en`, `en-US`, `en_GB`, `zh`, `zh-CN`, `zh-Hans`,
    /// `cmn`, …), or `None` for languages without normalization rules.
    pub fn for_tag(tag: &str) -> Option<Lang> {
        let primary = tag
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match primary.as_str() {
            "en" | "eng" => Some(Lang::English),
            "zh" | "cmn" | "zho" | "chi" => Some(Lang::Chinese),
            _ => None,
        }
    }
}

/// Rewrites numbers, dates, times, money, units and abbreviations in `text` as the words a
/// reader would say, by the rules of `lang`. Text it does not understand is kept as it is.
pub fn normalize(text: &str, lang: Lang) -> String {
    match lang {
        Lang::English => english(text),
        Lang::Chinese => chinese(text),
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid built-in pattern")
}

/// Replaces each match for which `f` returns text; a `None` keeps the match as it was.
fn rewrite(text: &str, re: &Regex, f: impl Fn(&Captures, &str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let m = caps.get(0).expect("group 0 always matches");
        if let Some(rep) = f(&caps, text) {
            out.push_str(&text[last..m.start()]);
            out.push_str(&rep);
            last = m.end();
        }
    }
    out.push_str(&text[last..]);
    out
}

fn char_before(text: &str, at: usize) -> Option<char> {
    text[..at].chars().next_back()
}

fn char_after(text: &str, at: usize) -> Option<char> {
    text[at..].chars().next()
}

fn parse_int(digits: &str) -> Option<u64> {
    let clean: String = digits.chars().filter(|c| *c != ',').collect();
    if clean.is_empty() || clean.len() > 15 {
        return None;
    }
    clean.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// English
// ---------------------------------------------------------------------------------------------

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const DIGIT_WORDS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// A cardinal in words, American style (no "and" inside the number).
fn cardinal(n: u64) -> String {
    Num2Words::new(n)
        .to_words()
        .map(|w| w.replace(" and ", " "))
        .unwrap_or_else(|_| digits(&n.to_string()))
}

fn ordinal(n: u64) -> String {
    Num2Words::new(n)
        .ordinal()
        .to_words()
        .map(|w| w.replace(" and ", " "))
        .unwrap_or_else(|_| digits(&n.to_string()))
}

/// A year: 1999 → nineteen ninety-nine, 2005 → two thousand five, 1905 → nineteen oh five.
fn year(n: u64) -> String {
    Num2Words::new(n)
        .year()
        .to_words()
        .map(|w| w.replace(" and ", " ").replace("oh-", "oh "))
        .unwrap_or_else(|_| cardinal(n))
}

fn digits(s: &str) -> String {
    s.chars()
        .filter_map(|c| c.to_digit(10).map(|d| DIGIT_WORDS[d as usize]))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A decimal or whole number as written (`1,234.5`), in words.
fn number_words(s: &str) -> String {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let int_words = match parse_int(int) {
        Some(n) if !(int.len() > 1 && int.starts_with('0')) => cardinal(n),
        _ => digits(int),
    };
    match frac {
        Some(f) if !f.is_empty() => format!("{int_words} point {}", digits(f)),
        _ => int_words,
    }
}

fn is_one(s: &str) -> bool {
    s.trim_start_matches('0') == "1" || s == "1.0" || s == "1.00"
}

fn plural(word: &str, count: &str) -> String {
    if is_one(count) {
        word.to_string()
    } else if let Some(stem) = word.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{word}s")
    }
}

static ABBREVIATIONS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(Mr|Mrs|Ms|Dr|St|vs|etc|e\.g|i\.e|No|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.",
    )
});

fn english_abbreviations(text: &str) -> String {
    rewrite(text, &ABBREVIATIONS, |c, t| {
        let m = c.get(0)?;
        let rest = &t[m.end()..];
        let next_word = rest.trim_start();
        let next_is_capital =
            rest.starts_with(' ') && next_word.chars().next().is_some_and(|c| c.is_uppercase());
        let next_is_digit =
            rest.starts_with(' ') && next_word.chars().next().is_some_and(|c| c.is_ascii_digit());
        let at_end = rest.trim().is_empty();
        let keep_stop = |word: &str| {
            if at_end || (next_is_capital && !next_is_digit) {
                format!("{word}.")
            } else {
                word.to_string()
            }
        };
        let word = &c[1];
        Some(match word {
            "Mr" => "Mister".into(),
            "Mrs" => "Missus".into(),
            "Ms" => "Miz".into(),
            "Dr" => "Doctor".into(),
            "St" => {
                let before = t[..m.start()].trim_end();
                let prev_word_capital = before
                    .rsplit(' ')
                    .next()
                    .and_then(|w| w.chars().next())
                    .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit());
                if prev_word_capital && !before.ends_with('.') {
                    keep_stop("Street")
                } else {
                    "Saint".into()
                }
            }
            "vs" => "versus".into(),
            "etc" => keep_stop("et cetera"),
            "e.g" => "for example".into(),
            "i.e" => "that is".into(),
            "No" => {
                if next_is_digit {
                    "number".into()
                } else {
                    return None;
                }
            }
            month => {
                let full = MONTHS
                    .iter()
                    .find(|m| m.starts_with(&month[..3]))
                    .copied()
                    .unwrap_or(month);
                keep_stop(full)
            }
        })
    })
}

static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(\+\d{1,3}[ -])?\(?\b(\d{3})\)?[ .-](\d{3})[ .-](\d{4})\b|\+\d{1,3}(?:[ -]\d{2,4}){2,4}\b")
});

fn english_phones(text: &str) -> String {
    rewrite(text, &PHONE, |c, t| {
        let m = c.get(0)?;
        if char_before(t, m.start()).is_some_and(|ch| ch.is_ascii_digit() || ch == '.') {
            return None;
        }
        let groups: Vec<String> = m
            .as_str()
            .split(|ch: char| !ch.is_ascii_digit())
            .filter(|g| !g.is_empty())
            .map(digits)
            .collect();
        let lead = if m.as_str().starts_with('+') {
            "plus "
        } else {
            ""
        };
        Some(format!("{lead}{}", groups.join(", ")))
    })
}

static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"));
static MONTH_DAY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(January|February|March|April|May|June|July|August|September|October|November|December)\s+(\d{1,2})(?:st|nd|rd|th)?\b(,?\s+(\d{4})\b)?",
    )
});
static DAY_MONTH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(January|February|March|April|May|June|July|August|September|October|November|December)\b(,?\s+(\d{4})\b)?",
    )
});

fn english_dates(text: &str) -> String {
    let text = rewrite(text, &ISO_DATE, |c, _| {
        let (y, mo, d) = (parse_int(&c[1])?, parse_int(&c[2])?, parse_int(&c[3])?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
            return None;
        }
        Some(format!(
            "{} {}, {}",
            MONTHS[mo as usize - 1],
            ordinal(d),
            year(y)
        ))
    });
    let text = rewrite(&text, &MONTH_DAY, |c, _| {
        let d = parse_int(&c[2]).filter(|d| (1..=31).contains(d))?;
        let mut s = format!("{} {}", &c[1], ordinal(d));
        if let Some(y) = c.get(4).and_then(|y| parse_int(y.as_str())) {
            s.push_str(&format!(", {}", year(y)));
        }
        Some(s)
    });
    rewrite(&text, &DAY_MONTH, |c, _| {
        let d = parse_int(&c[1]).filter(|d| (1..=31).contains(d))?;
        let mut s = format!("the {} of {}", ordinal(d), &c[2]);
        if let Some(y) = c.get(4).and_then(|y| parse_int(y.as_str())) {
            s.push_str(&format!(", {}", year(y)));
        }
        Some(s)
    })
}

static CLOCK: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)\b(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s?(a\.m\.|p\.m\.|(?:am|pm)\b))?")
});
static HOUR_ONLY: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(\d{1,2})\s?(a\.m\.|p\.m\.|(?:am|pm)\b)"));

fn meridiem(s: &str) -> &'static str {
    if s.to_ascii_lowercase().starts_with('a') {
        "a m"
    } else {
        "p m"
    }
}

fn english_times(text: &str) -> String {
    let text = rewrite(text, &CLOCK, |c, t| {
        let m = c.get(0)?;
        if char_after(t, m.end()).is_some_and(|ch| ch == ':' || ch.is_ascii_digit()) {
            return None;
        }
        let h = parse_int(&c[1]).filter(|h| *h <= 23)?;
        let min = parse_int(&c[2]).filter(|m| *m <= 59)?;
        let mut s = cardinal(h);
        let ampm = c.get(4).map(|a| meridiem(a.as_str()));
        if min == 0 {
            if ampm.is_none() {
                s.push_str(if h >= 13 || h == 0 {
                    " hundred"
                } else {
                    " o'clock"
                });
            }
        } else if min < 10 {
            s.push_str(&format!(" oh {}", cardinal(min)));
        } else {
            s.push_str(&format!(" {}", cardinal(min)));
        }
        if let Some(sec) = c.get(3).and_then(|s| parse_int(s.as_str())) {
            s.push_str(&format!(
                " and {} {}",
                cardinal(sec),
                plural("second", &c[3])
            ));
        }
        if let Some(a) = ampm {
            s.push(' ');
            s.push_str(a);
        }
        Some(s)
    });
    rewrite(&text, &HOUR_ONLY, |c, _| {
        let h = parse_int(&c[1]).filter(|h| (1..=12).contains(h))?;
        Some(format!("{} {}", cardinal(h), meridiem(&c[2])))
    })
}

static MONEY_SYMBOL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"([$€£¥￥])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion)\b)?",
    )
});
static MONEY_CODE: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?\s?(USD|EUR|GBP|JPY|CNY|RMB)\b"));

/// (unit singular, subunit singular, subunit plural)
fn currency(code: &str) -> Option<(&'static str, Option<(&'static str, &'static str)>)> {
    Some(match code {
        "$" | "USD" => ("dollar", Some(("cent", "cents"))),
        "€" | "EUR" => ("euro", Some(("cent", "cents"))),
        "£" | "GBP" => ("pound", Some(("penny", "pence"))),
        "¥" | "￥" | "JPY" => ("yen", None),
        "CNY" | "RMB" => ("yuan", None),
        _ => return None,
    })
}

fn money(symbol: &str, int: &str, frac: Option<&str>, scale: Option<&str>) -> Option<String> {
    let (unit, sub) = currency(symbol)?;
    let n = parse_int(int)?;
    let unit_plural = |one: bool| -> String {
        if one || unit == "yen" || unit == "yuan" {
            unit.to_string()
        } else {
            format!("{unit}s")
        }
    };
    if let Some(scale) = scale {
        let num = match frac {
            Some(f) => format!("{} point {}", cardinal(n), digits(f)),
            None => cardinal(n),
        };
        return Some(format!("{num} {scale} {}", unit_plural(false)));
    }
    match (frac, sub) {
        (Some(f), Some((one, many))) if f.len() == 2 => {
            let cents = parse_int(f)?;
            let main = format!("{} {}", cardinal(n), unit_plural(n == 1));
            let sub_words = format!(
                "{} {}",
                cardinal(cents),
                if cents == 1 { one } else { many }
            );
            Some(match (n, cents) {
                (_, 0) => main,
                (0, _) => sub_words,
                _ => format!("{main} and {sub_words}"),
            })
        }
        (Some(f), _) => Some(format!(
            "{} point {} {}",
            cardinal(n),
            digits(f),
            unit_plural(false)
        )),
        (None, _) => Some(format!("{} {}", cardinal(n), unit_plural(n == 1))),
    }
}

fn english_money(text: &str) -> String {
    let text = rewrite(text, &MONEY_SYMBOL, |c, _| {
        money(
            &c[1],
            &c[2],
            c.get(3).map(|m| m.as_str()),
            c.get(4).map(|m| m.as_str()),
        )
    });
    rewrite(&text, &MONEY_CODE, |c, t| {
        let m = c.get(0)?;
        if char_before(t, m.start()).is_some_and(|ch| ch == '.' || ch.is_ascii_digit()) {
            return None;
        }
        money(&c[3], &c[1], c.get(2).map(|m| m.as_str()), None)
    })
}

const NUM: &str = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)";

static PERCENT: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"{NUM}(?:\s?[-–]\s?{NUM})?\s?%")));

fn english_percent(text: &str) -> String {
    rewrite(text, &PERCENT, |c, _| {
        let first = number_words(&c[1]);
        Some(match c.get(2) {
            Some(to) => format!("{first} to {} percent", number_words(to.as_str())),
            None => format!("{first} percent"),
        })
    })
}

/// A minus sign before a number at the start of the text or after a space or bracket.
static NEGATIVE: LazyLock<Regex> = LazyLock::new(|| re(r"(^|[\s(\[（，。：；,])[-−](\d)"));

fn negatives(text: &str, word: &str) -> String {
    rewrite(text, &NEGATIVE, |c, _| {
        Some(format!("{}{word}{}", &c[1], &c[2]))
    })
}

const UNITS: [(&str, &str); 25] = [
    ("km/h", "kilometer per hour"),
    ("mph", "mile per hour"),
    ("kHz", "kilohertz"),
    ("Hz", "hertz"),
    ("°C", "degree Celsius"),
    ("°F", "degree Fahrenheit"),
    ("km", "kilometer"),
    ("kg", "kilogram"),
    ("mg", "milligram"),
    ("ml", "milliliter"),
    ("mL", "milliliter"),
    ("mm", "millimeter"),
    ("cm", "centimeter"),
    ("GB", "gigabyte"),
    ("MB", "megabyte"),
    ("KB", "kilobyte"),
    ("kB", "kilobyte"),
    ("TB", "terabyte"),
    ("ms", "millisecond"),
    ("min", "minute"),
    ("m", "meter"),
    ("g", "gram"),
    ("l", "liter"),
    ("L", "liter"),
    ("s", "second"),
];

static UNIT: LazyLock<Regex> = LazyLock::new(|| {
    let alts: Vec<String> = UNITS
        .iter()
        .map(|(u, _)| regex_lite::escape(u))
        .chain(std::iter::once("h".to_string()))
        .collect();
    re(&format!(
        r"\b{NUM}(?:\s?[-–]\s?{NUM})?\s?({})(?:\b|$)",
        alts.join("|")
    ))
});

/// The spoken unit name, plural unless the count is exactly one.
fn unit_words(unit: &str, count: &str) -> String {
    let name = if unit == "h" {
        "hour"
    } else {
        UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, n)| *n)
            .unwrap_or(unit)
    };
    if is_one(count) || name.ends_with("hertz") {
        return name.to_string();
    }
    // Pluralize the head noun: "kilometer per hour" → "kilometers per hour".
    match name.split_once(' ') {
        Some((head, tail)) => format!("{} {tail}", plural(head, count)),
        None => plural(name, count),
    }
}

fn english_units(text: &str) -> String {
    rewrite(text, &UNIT, |c, t| {
        let m = c.get(0)?;
        let unit = c.get(3)?.as_str();
        // A unit letter must not run on into a word ("5 mice"); °C/°F and km/h end in non-word
        // characters that the pattern's boundary cannot check.
        if char_after(t, m.end()).is_some_and(|ch| ch.is_alphanumeric()) {
            return None;
        }
        if char_before(t, m.start()).is_some_and(|ch| ch == '.' || ch.is_alphabetic()) {
            return None;
        }
        let last = c.get(2).map(|x| x.as_str()).unwrap_or(&c[1]);
        let first = number_words(&c[1]);
        Some(match c.get(2) {
            Some(to) => format!(
                "{first} to {} {}",
                number_words(to.as_str()),
                unit_words(unit, last)
            ),
            None => format!("{first} {}", unit_words(unit, last)),
        })
    })
}

static DECADE: LazyLock<Regex> = LazyLock::new(|| re(r"\b(1[1-9]|20)(\d0)s\b"));
static ORDINAL: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(\d{1,3}(?:,\d{3})+|\d+)(st|nd|rd|th|ST|ND|RD|TH)\b"));
static RANGE: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d+)\s?[-–]\s?(\d+)\b"));
static NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"(\d{1,3}(?:,\d{3})+|\d+)((?:\.\d+)+)?"));

fn plural_words(words: &str) -> String {
    match words.rsplit_once(' ') {
        Some((head, last)) => format!("{head} {}", plural(last, "2")),
        None => plural(words, "2"),
    }
}

/// A bare number in running text, read as a year when it looks like one.
fn bare_number(s: &str, frac: Option<&str>) -> String {
    if frac.is_none()
        && s.len() == 4
        && !s.contains(',')
        && let Some(n) = parse_int(s)
        && (1100..=2099).contains(&n)
    {
        return year(n);
    }
    match frac {
        None => number_words(s),
        Some(f) => {
            let parts: Vec<&str> = f.split('.').filter(|p| !p.is_empty()).collect();
            if parts.len() == 1 {
                number_words(&format!("{s}.{}", parts[0]))
            } else {
                // A version-like "1.2.3": each part as a number.
                std::iter::once(s)
                    .chain(parts)
                    .map(number_words)
                    .collect::<Vec<_>>()
                    .join(" point ")
            }
        }
    }
}

fn english_decades(text: &str) -> String {
    rewrite(text, &DECADE, |c, _| {
        let n = parse_int(&format!("{}{}", &c[1], &c[2]))?;
        Some(plural_words(&year(n)))
    })
}

fn english_numbers(text: &str) -> String {
    // Any ordinal suffix reads as the ordinal, also a mistyped one ("1th").
    let text = rewrite(text, &ORDINAL, |c, _| Some(ordinal(parse_int(&c[1])?)));
    let text = rewrite(&text, &RANGE, |c, t| {
        let m = c.get(0)?;
        let joined_before =
            char_before(t, m.start()).is_some_and(|ch| matches!(ch, '.' | '-' | ',' | ':'));
        let rest = &t[m.end()..];
        let joined_after = rest.starts_with(['-', ':'])
            || (rest.starts_with(['.', ','])
                && rest[1..].starts_with(|d: char| d.is_ascii_digit()));
        if joined_before || joined_after {
            return None;
        }
        Some(format!(
            "{} to {}",
            bare_number(&c[1], None),
            bare_number(&c[2], None)
        ))
    });
    rewrite(&text, &NUMBER, |c, t| {
        let m = c.get(0)?;
        let mut s = bare_number(&c[1], c.get(2).map(|f| f.as_str()));
        // "MP3" → "MP three": keep a number apart from letters it is written against.
        if char_before(t, m.start()).is_some_and(|ch| ch.is_alphabetic()) {
            s = format!(" {s}");
        }
        if char_after(t, m.end()).is_some_and(|ch| ch.is_alphabetic()) {
            s.push(' ');
        }
        Some(s)
    })
}

fn english(text: &str) -> String {
    let text = negatives(text, "minus ");
    let text = english_abbreviations(&text);
    let text = english_phones(&text);
    let text = english_dates(&text);
    let text = english_times(&text);
    let text = english_money(&text);
    let text = english_percent(&text);
    let text = english_decades(&text);
    let text = english_units(&text);
    english_numbers(&text)
}

// ---------------------------------------------------------------------------------------------
// Chinese
// ---------------------------------------------------------------------------------------------

const ZH_DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// Digits one by one: 2024 → 二零二四.
fn zh_digits(s: &str) -> String {
    s.chars()
        .filter_map(|c| c.to_digit(10).map(|d| ZH_DIGITS[d as usize]))
        .collect()
}

/// A number below 10 000 (without leading 零).
fn zh_group(n: u64) -> String {
    let units = ["千", "百", "十", ""];
    let ds = [n / 1000 % 10, n / 100 % 10, n / 10 % 10, n % 10];
    let mut out = String::new();
    let mut zero = false;
    for (d, u) in ds.iter().zip(units) {
        if *d == 0 {
            zero = !out.is_empty();
            continue;
        }
        if zero {
            out.push('零');
            zero = false;
        }
        out.push(ZH_DIGITS[*d as usize]);
        out.push_str(u);
    }
    out
}

/// A Chinese cardinal: 123 → 一百二十三, 10 → 十, 10005 → 一万零五.
fn zh_cardinal(n: u64) -> String {
    if n == 0 {
        return "零".into();
    }
    let units = ["", "万", "亿", "万亿"];
    let mut groups = Vec::new();
    let mut m = n;
    while m > 0 {
        groups.push(m % 10_000);
        m /= 10_000;
    }
    let mut out = String::new();
    let mut pending_zero = false;
    for (i, g) in groups.iter().enumerate().rev() {
        if *g == 0 {
            pending_zero = !out.is_empty();
            continue;
        }
        if !out.is_empty() && (pending_zero || *g < 1000) {
            out.push('零');
        }
        pending_zero = false;
        out.push_str(&zh_group(*g));
        out.push_str(units[i.min(units.len() - 1)]);
    }
    if let Some(rest) = out.strip_prefix("一十") {
        out = format!("十{rest}");
    }
    out
}

/// A number as written (`1,234.5`, `007`) in Chinese.
fn zh_number(s: &str) -> String {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let clean: String = int.chars().filter(|c| *c != ',').collect();
    let phone_like = (clean.len() > 1 && clean.starts_with('0'))
        || (clean.len() == 11 && clean.starts_with('1') && !int.contains(','));
    let int_words = match parse_int(&clean) {
        Some(n) if !phone_like => zh_cardinal(n),
        _ => zh_digits(&clean),
    };
    match frac {
        Some(f) if !f.is_empty() => format!("{int_words}点{}", zh_digits(f)),
        _ => int_words,
    }
}

const ZH_UNITS: [(&str, &str); 26] = [
    ("km/h", "公里每小时"),
    ("mph", "英里每小时"),
    ("kHz", "千赫"),
    ("Hz", "赫兹"),
    ("°C", "摄氏度"),
    ("℃", "摄氏度"),
    ("°F", "华氏度"),
    ("℉", "华氏度"),
    ("km", "公里"),
    ("kg", "公斤"),
    ("mg", "毫克"),
    ("ml", "毫升"),
    ("mL", "毫升"),
    ("mm", "毫米"),
    ("cm", "厘米"),
    ("GB", "吉字节"),
    ("MB", "兆字节"),
    ("KB", "千字节"),
    ("TB", "太字节"),
    ("ms", "毫秒"),
    ("min", "分钟"),
    ("m", "米"),
    ("g", "克"),
    ("L", "升"),
    ("l", "升"),
    ("s", "秒"),
];

static ZH_ISO_DATE: LazyLock<Regex> = LazyLock::new(|| re(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"));
static ZH_YEAR: LazyLock<Regex> = LazyLock::new(|| re(r"(\d{4})年"));
static ZH_TIME: LazyLock<Regex> = LazyLock::new(|| re(r"(\d{1,2}):(\d{2})(?::(\d{2}))?"));
static ZH_PERCENT: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"{NUM}(?:\s?[-–~～]\s?{NUM})?\s?[%％]")));
static ZH_MONEY: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"([$€£¥￥])\s?{NUM}")));
static ZH_UNIT: LazyLock<Regex> = LazyLock::new(|| {
    let mut alts: Vec<String> = ZH_UNITS
        .iter()
        .map(|(u, _)| regex_lite::escape(u))
        .collect();
    alts.push("h".into());
    re(&format!(
        r"{NUM}(?:\s?[-–~～]\s?{NUM})?\s?({})",
        alts.join("|")
    ))
});
static ZH_RANGE: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"{NUM}\s?[-–~～]\s?{NUM}")));
static ZH_NUMBER: LazyLock<Regex> = LazyLock::new(|| re(NUM));

fn chinese(text: &str) -> String {
    let text = negatives(text, "负");
    let text = rewrite(&text, &ZH_ISO_DATE, |c, t| {
        let m = c.get(0)?;
        if char_after(t, m.end()).is_some_and(|ch| ch.is_ascii_digit()) {
            return None;
        }
        let (mo, d) = (parse_int(&c[2])?, parse_int(&c[3])?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
            return None;
        }
        Some(format!(
            "{}年{}月{}日",
            zh_digits(&c[1]),
            zh_cardinal(mo),
            zh_cardinal(d)
        ))
    });
    let text = rewrite(&text, &ZH_YEAR, |c, t| {
        let m = c.get(0)?;
        if char_before(t, m.start()).is_some_and(|ch| ch.is_ascii_digit() || ch == '.') {
            return None;
        }
        Some(format!("{}年", zh_digits(&c[1])))
    });
    let text = rewrite(&text, &ZH_TIME, |c, t| {
        let m = c.get(0)?;
        if char_after(t, m.end()).is_some_and(|ch| ch.is_ascii_digit() || ch == ':') {
            return None;
        }
        let h = parse_int(&c[1]).filter(|h| *h <= 24)?;
        let min = parse_int(&c[2]).filter(|m| *m <= 59)?;
        let mut s = format!("{}点", zh_cardinal(h));
        if min > 0 {
            let zero = if min < 10 { "零" } else { "" };
            s.push_str(&format!("{zero}{}分", zh_cardinal(min)));
        }
        if let Some(sec) = c.get(3).and_then(|s| parse_int(s.as_str())) {
            if min == 0 {
                s.push_str("零分");
            }
            s.push_str(&format!("{}秒", zh_cardinal(sec)));
        }
        Some(s)
    });
    let text = rewrite(&text, &ZH_PERCENT, |c, _| {
        Some(match c.get(2) {
            Some(to) => format!(
                "百分之{}到百分之{}",
                zh_number(&c[1]),
                zh_number(to.as_str())
            ),
            None => format!("百分之{}", zh_number(&c[1])),
        })
    });
    let text = rewrite(&text, &ZH_MONEY, |c, _| {
        let unit = match &c[1] {
            "$" => "美元",
            "€" => "欧元",
            "£" => "英镑",
            _ => "元",
        };
        Some(format!("{}{unit}", zh_number(&c[2])))
    });
    let text = rewrite(&text, &ZH_UNIT, |c, t| {
        let m = c.get(0)?;
        if char_after(t, m.end()).is_some_and(|ch| ch.is_ascii_alphanumeric()) {
            return None;
        }
        let unit = &c[3];
        let name = if unit == "h" {
            "小时"
        } else {
            ZH_UNITS.iter().find(|(u, _)| *u == unit)?.1
        };
        Some(match c.get(2) {
            Some(to) => format!("{}到{}{name}", zh_number(&c[1]), zh_number(to.as_str())),
            None => format!("{}{name}", zh_number(&c[1])),
        })
    });
    let text = rewrite(&text, &ZH_RANGE, |c, _| {
        Some(format!("{}到{}", zh_number(&c[1]), zh_number(&c[2])))
    });
    rewrite(&text, &ZH_NUMBER, |c, _| Some(zh_number(&c[1])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn en(text: &str) -> String {
        normalize(text, Lang::English)
    }

    fn zh(text: &str) -> String {
        normalize(text, Lang::Chinese)
    }

    fn table(f: fn(&str) -> String, cases: &[(&str, &str)]) {
        for (input, want) in cases {
            assert_eq!(f(input), *want, "input: {input:?}");
        }
    }

    #[test]
    fn language_tags() {
        assert_eq!(Lang::for_tag("en"), Some(Lang::English));
        assert_eq!(Lang::for_tag("en-US"), Some(Lang::English));
        assert_eq!(Lang::for_tag("en_GB"), Some(Lang::English));
        assert_eq!(Lang::for_tag("EN-gb"), Some(Lang::English));
        assert_eq!(Lang::for_tag("zh-CN"), Some(Lang::Chinese));
        assert_eq!(Lang::for_tag("zh"), Some(Lang::Chinese));
        assert_eq!(Lang::for_tag("zh-Hans-CN"), Some(Lang::Chinese));
        assert_eq!(Lang::for_tag("cmn"), Some(Lang::Chinese));
        assert_eq!(Lang::for_tag("fr-FR"), None);
        assert_eq!(Lang::for_tag(""), None);
    }

    #[test]
    fn english_cardinals() {
        table(
            en,
            &[
                ("0", "zero"),
                ("7", "seven"),
                ("13", "thirteen"),
                ("42", "forty-two"),
                ("100", "one hundred"),
                ("101", "one hundred one"),
                ("1,234", "one thousand two hundred thirty-four"),
                (
                    "1,234,567",
                    "one million two hundred thirty-four thousand five hundred sixty-seven",
                ),
                ("5000", "five thousand"),
                ("I have 3 cats.", "I have three cats."),
                ("-5", "minus five"),
                ("it is -12 outside", "it is minus twelve outside"),
                ("3.14", "three point one four"),
                ("0.5", "zero point five"),
                ("007", "zero zero seven"),
                ("version 1.2.3", "version one point two point three"),
                ("MP3 player", "MP three player"),
                (
                    "1234567890123456789",
                    "one two three four five six seven eight nine zero one two three four five six seven eight nine",
                ),
            ],
        );
    }

    #[test]
    fn english_years() {
        table(
            en,
            &[
                ("1999", "nineteen ninety-nine"),
                ("2005", "two thousand five"),
                ("2024", "twenty twenty-four"),
                ("2000", "two thousand"),
                ("1905", "nineteen oh five"),
                ("1100", "eleven hundred"),
                ("In 1984 it rained.", "In nineteen eighty-four it rained."),
                ("the 1990s", "the nineteen nineties"),
                // Outside the year window: a cardinal.
                ("1000", "one thousand"),
                ("2100", "two thousand one hundred"),
                ("9999", "nine thousand nine hundred ninety-nine"),
                // A thousands separator means a quantity, not a year.
                ("1,999", "one thousand nine hundred ninety-nine"),
            ],
        );
    }

    #[test]
    fn english_ordinals() {
        table(
            en,
            &[
                ("1st", "first"),
                ("2nd", "second"),
                ("3rd", "third"),
                ("4th", "fourth"),
                ("11th", "eleventh"),
                ("22nd", "twenty-second"),
                ("101st", "one hundred first"),
                ("the 21st century", "the twenty-first century"),
                ("1ST", "first"),
                // A mistyped suffix still reads as the ordinal.
                ("1th", "first"),
            ],
        );
    }

    #[test]
    fn english_dates() {
        table(
            en,
            &[
                ("2024-03-05", "March fifth, twenty twenty-four"),
                ("1999-12-31", "December thirty-first, nineteen ninety-nine"),
                ("March 5, 2024", "March fifth, twenty twenty-four"),
                ("March 5th", "March fifth"),
                (
                    "on July 4th, 1776.",
                    "on July fourth, seventeen seventy-six.",
                ),
                ("5 March 2024", "the fifth of March, twenty twenty-four"),
                ("1st May", "the first of May"),
                ("Jan. 5, 2020", "January fifth, twenty twenty"),
                ("in March 2024", "in March twenty twenty-four"),
                // Not a date: month 13.
                ("2024-13-05", "twenty twenty-four-thirteen-zero five"),
            ],
        );
    }

    #[test]
    fn english_times() {
        table(
            en,
            &[
                ("3:30 pm", "three thirty p m"),
                ("3:30 PM", "three thirty p m"),
                ("9:05 a.m.", "nine oh five a m"),
                ("14:05", "fourteen oh five"),
                ("14:00", "fourteen hundred"),
                ("3:00", "three o'clock"),
                ("3:00 pm", "three p m"),
                ("9am", "nine a m"),
                ("at 10 pm", "at ten p m"),
                ("12:30:15", "twelve thirty and fifteen seconds"),
                // Not a time.
                ("25:99", "twenty-five:ninety-nine"),
            ],
        );
    }

    #[test]
    fn english_money() {
        table(
            en,
            &[
                ("$5", "five dollars"),
                ("$1", "one dollar"),
                ("$1.50", "one dollar and fifty cents"),
                ("$0.99", "ninety-nine cents"),
                ("$0.01", "one cent"),
                ("$5.00", "five dollars"),
                ("$1,000", "one thousand dollars"),
                ("$2 million", "two million dollars"),
                ("$1.5 billion", "one point five billion dollars"),
                ("€20", "twenty euros"),
                ("€1.05", "one euro and five cents"),
                ("£3", "three pounds"),
                ("£2.50", "two pounds and fifty pence"),
                ("¥100", "one hundred yen"),
                ("5 USD", "five dollars"),
                ("20 EUR", "twenty euros"),
                ("100 JPY", "one hundred yen"),
                ("It costs $12.", "It costs twelve dollars."),
            ],
        );
    }

    #[test]
    fn english_percent_units_ranges() {
        table(
            en,
            &[
                ("50%", "fifty percent"),
                ("3.5%", "three point five percent"),
                ("10-20%", "ten to twenty percent"),
                ("5 km", "five kilometers"),
                ("1 km", "one kilometer"),
                ("5km", "five kilometers"),
                ("2.5 kg", "two point five kilograms"),
                ("100 m", "one hundred meters"),
                ("12 cm", "twelve centimeters"),
                ("3 mm", "three millimeters"),
                ("500 g", "five hundred grams"),
                ("20 mg", "twenty milligrams"),
                ("2 l", "two liters"),
                ("250 ml", "two hundred fifty milliliters"),
                ("60 mph", "sixty miles per hour"),
                ("1 mph", "one mile per hour"),
                ("100 km/h", "one hundred kilometers per hour"),
                ("20°C", "twenty degrees Celsius"),
                ("1 °C", "one degree Celsius"),
                ("98.6°F", "ninety-eight point six degrees Fahrenheit"),
                ("16 GB", "sixteen gigabytes"),
                ("512 MB", "five hundred twelve megabytes"),
                ("4 KB", "four kilobytes"),
                ("2 TB", "two terabytes"),
                ("50 Hz", "fifty hertz"),
                ("44 kHz", "forty-four kilohertz"),
                ("200 ms", "two hundred milliseconds"),
                ("30 s", "thirty seconds"),
                ("5 min", "five minutes"),
                ("1 min", "one minute"),
                ("2 h", "two hours"),
                ("10-20 km", "ten to twenty kilometers"),
                ("10-20", "ten to twenty"),
                ("pages 5–9", "pages five to nine"),
                ("1999-2005", "nineteen ninety-nine to two thousand five"),
                // A unit letter that starts a word is not a unit.
                ("5 mice", "five mice"),
                ("3 sheep", "three sheep"),
            ],
        );
    }

    #[test]
    fn english_abbreviations() {
        table(
            en,
            &[
                ("Mr. Smith", "Mister Smith"),
                ("Mrs. Smith", "Missus Smith"),
                ("Ms. Lee", "Miz Lee"),
                ("Dr. Who", "Doctor Who"),
                ("St. Louis", "Saint Louis"),
                ("221 Baker St.", "two hundred twenty-one Baker Street."),
                ("cats vs. dogs", "cats versus dogs"),
                ("apples, pears, etc.", "apples, pears, et cetera."),
                ("fruit, e.g. apples", "fruit, for example apples"),
                ("one, i.e. this", "one, that is this"),
                ("No. 5", "number five"),
                ("No. I refuse", "No. I refuse"),
                ("Dec. 25", "December twenty-fifth"),
                ("since Feb.", "since February."),
            ],
        );
    }

    #[test]
    fn english_phone_numbers() {
        table(
            en,
            &[
                (
                    "555-123-4567",
                    "five five five, one two three, four five six seven",
                ),
                (
                    "(555) 123-4567",
                    "five five five, one two three, four five six seven",
                ),
                (
                    "+44 20 7946 0958",
                    "plus four four, two zero, seven nine four six, zero nine five eight",
                ),
            ],
        );
    }

    #[test]
    fn english_keeps_what_it_does_not_understand() {
        table(
            en,
            &[
                ("Hello, world!", "Hello, world!"),
                ("", ""),
                ("  spaced  ", "  spaced  "),
                ("naïve café", "naïve café"),
                ("email me@example.com", "email me@example.com"),
                ("中文", "中文"),
                ("#hashtag @user", "#hashtag @user"),
            ],
        );
    }

    #[test]
    fn chinese_cardinals() {
        table(
            zh,
            &[
                ("0", "零"),
                ("5", "五"),
                ("10", "十"),
                ("11", "十一"),
                ("20", "二十"),
                ("105", "一百零五"),
                ("110", "一百一十"),
                ("123", "一百二十三"),
                ("1000", "一千"),
                ("1010", "一千零一十"),
                ("2024", "二千零二十四"),
                ("10000", "一万"),
                ("10005", "一万零五"),
                ("100000", "十万"),
                ("120000", "十二万"),
                ("1000000", "一百万"),
                ("12345678", "一千二百三十四万五千六百七十八"),
                ("100000000", "一亿"),
                ("100010000", "一亿零一万"),
                ("1,234", "一千二百三十四"),
                ("-5", "负五"),
                ("3.5", "三点五"),
                ("0.25", "零点二五"),
                ("我有3个苹果", "我有三个苹果"),
                ("13800138000", "一三八零零一三八零零零"),
                ("010", "零一零"),
            ],
        );
    }

    #[test]
    fn chinese_dates_and_times() {
        table(
            zh,
            &[
                ("2024年", "二零二四年"),
                ("1999年", "一九九九年"),
                ("2024年3月5日", "二零二四年三月五日"),
                ("12月31号", "十二月三十一号"),
                ("2024-03-05", "二零二四年三月五日"),
                ("2024/3/5", "二零二四年三月五日"),
                ("14:30", "十四点三十分"),
                ("8:05", "八点零五分"),
                ("9:00", "九点"),
                ("10:20:30", "十点二十分三十秒"),
                ("现在是14:30。", "现在是十四点三十分。"),
            ],
        );
    }

    #[test]
    fn chinese_money_percent_ordinals_units() {
        table(
            zh,
            &[
                ("50%", "百分之五十"),
                ("3.5%", "百分之三点五"),
                ("10-20%", "百分之十到百分之二十"),
                ("¥100", "一百元"),
                ("￥100", "一百元"),
                ("100元", "一百元"),
                ("$5", "五美元"),
                ("€20", "二十欧元"),
                ("£3", "三英镑"),
                ("第3", "第三"),
                ("第10名", "第十名"),
                ("5km", "五公里"),
                ("5 km", "五公里"),
                ("3kg", "三公斤"),
                ("20°C", "二十摄氏度"),
                ("20℃", "二十摄氏度"),
                ("100m", "一百米"),
                ("5cm", "五厘米"),
                ("2mm", "二毫米"),
                ("500g", "五百克"),
                ("1.5L", "一点五升"),
                ("250ml", "二百五十毫升"),
                ("120km/h", "一百二十公里每小时"),
                ("16GB", "十六吉字节"),
                ("50Hz", "五十赫兹"),
                ("30s", "三十秒"),
                ("10min", "十分钟"),
                ("2h", "二小时"),
                ("10-20", "十到二十"),
                ("3~5天", "三到五天"),
                ("10-20km", "十到二十公里"),
            ],
        );
    }

    #[test]
    fn chinese_keeps_what_it_does_not_understand() {
        table(
            zh,
            &[
                ("你好，世界！", "你好，世界！"),
                ("我喜欢Rust", "我喜欢Rust"),
                ("", ""),
                ("😀", "😀"),
            ],
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,60}") {
            let _ = normalize(&text, Lang::English);
            let _ = normalize(&text, Lang::Chinese);
        }

        #[test]
        fn numeric_text_never_panics(text in "[-0-9.,:%$€£¥ /°CFkmgsh年月日第]{0,30}") {
            let _ = normalize(&text, Lang::English);
            let _ = normalize(&text, Lang::Chinese);
        }

        #[test]
        fn never_empty_for_words_or_numbers(
            text in "[ a-zA-Z0-9.,:%$€£¥°/-]{0,30}[a-zA-Z0-9一-龥][ a-zA-Z0-9.,:%$€£¥°/年月日-]{0,30}"
        ) {
            for lang in [Lang::English, Lang::Chinese] {
                let out = normalize(&text, lang);
                proptest::prop_assert!(
                    out.chars().any(|c| c.is_alphanumeric()),
                    "{:?} → {:?}", text, out
                );
            }
        }

        #[test]
        fn plain_words_pass_through(text in "[a-zA-Z ,!?'一-龥，。]{0,60}") {
            proptest::prop_assert_eq!(normalize(&text, Lang::English), text.clone());
            proptest::prop_assert_eq!(normalize(&text, Lang::Chinese), text);
        }

        #[test]
        fn no_digits_left_in_plain_numbers(n in 0u64..1_000_000_000_000) {
            let out = normalize(&n.to_string(), Lang::English);
            proptest::prop_assert!(!out.chars().any(|c| c.is_ascii_digit()), "{} → {}", n, out);
            let out = normalize(&n.to_string(), Lang::Chinese);
            proptest::prop_assert!(!out.chars().any(|c| c.is_ascii_digit()), "{} → {}", n, out);
        }
    }
}
