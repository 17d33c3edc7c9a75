//! Mandarin text to the phoneme string Kokoro-82M v1.0's Mandarin voices (`zf_*`, `zm_*`) read.
//!
//! The input is Chinese text whose digits, dates and units have already been turned into
//! Chinese words (see [`super::normalize`]). The pipeline:
//!
//! 1. **Scripts.** [`split_scripts`] cuts the text into Han and Latin runs so the caller can send
//!    embedded English words through the English path; [`to_kokoro_phonemes`] itself speaks only
//!    Han characters and punctuation and leaves out what it cannot say (Latin letters, digits,
//!    emoji).
//! 2. **Words.** Each run of Han characters is converted to simplified characters (`fast2s`;
//!    the readings do not change) and segmented with jieba (`jieba-rs`, default dictionary, HMM
//!    on for unknown words).
//! 3. **Pinyin.** A word of two or more characters takes its reading from the word-level pinyin
//!    dictionary (phrase-pinyin-data, through the `pinyin-converter` crate), matched longest
//!    first inside the word; so 银行 is `yin2 hang2` while 行走 is `xing2 zou3`. Single
//!    characters, and characters no dictionary word covers, take the `pinyin` crate's most
//!    common reading. This is the same data the public Kokoro front end used (pypinyin reads
//!    phrase-pinyin-data and pinyin-data), which is why it was chosen. The word dictionary is
//!    loaded on the first Chinese sentence (about a second and roughly 110 MB; see
//!    `docs/neural.md`).
//! 4. **Tone sandhi**, applied to the tone numbers:
//!    - 不 is `bu2` before a fourth tone and `bu4` elsewhere; a neutral 不 from the dictionary
//!      (对不起) stays neutral.
//!    - 一 is `yi1` when it is part of a number (after 第 or a numeral, before a digit) or ends
//!      the run, neutral between a repeated verb (看一看), `yi2` before a fourth or neutral tone
//!      and `yi4` before the other tones.
//!    - Third tone before third tone becomes second tone inside a word (你好 → `ni2 hao3`,
//!      展览馆 → `zhan2 lan2 guan3`) and from a one-syllable word into the next word (我 + 想 →
//!      `wo2 xiang3`, 很 + 可怕 → `hen2 ke3 pa4`; a longer word keeps its last third tone before
//!      the next word: 老虎 + 很 → `lao2 hu3 hen2`), but not between digits read one by one
//!      (一九九九 stays `yi1 jiu3 jiu3 jiu3`).
//! 5. **Pinyin to phonemes.** Each syllable becomes Kokoro's Mandarin symbols. The mapping
//!    follows the public Kokoro/misaki v1.0 Mandarin transcription (its pinyin-to-IPA table and
//!    tone arrows), because the v1.0 voices were trained on exactly those strings:
//!    - initials: b `p`, p `pʰ`, m `m`, f `f`, d `t`, t `tʰ`, n `n`, l `l`, g `k`, k `kʰ`,
//!      h `x`, j `ʨ`, q `ʨʰ`, x `ɕ`, zh `ꭧ`, ch `ꭧʰ`, sh `ʂ`, r `ɻ`, z `ʦ`, c `ʦʰ`, s `s`;
//!    - finals: the medial is `j` (i), `w` (u) or `ɥ` (ü), then the nucleus, then the coda
//!      `n`/`ŋ`: a `a`, ai `ai`, ao `au`, an `an`, ang `aŋ`, e `ɤ`, ei `ei`, en `ən`,
//!      eng `əŋ`, ou `ou`, ong `ʊŋ`, i `i`, ia `ja`, ie `je`, iao `jau`, iu `jou`, ian `jɛn`,
//!      in `in`, iang `jaŋ`, ing `iŋ`, iong `jʊŋ`, u `u`, ua `wa`, uo and o `wo`, uai `wai`,
//!      ui `wei`, uan `wan`, un `wən`, uang `waŋ`, ueng `wəŋ`, ü `y`, üe `ɥe`, üan `ɥɛn`,
//!      ün `yn`; the "empty" i of zhi/chi/shi/ri and zi/ci/si is `ɨ`;
//!    - whole syllables: er `ɚ`, o `ɔ`, ê `ɛ`, yo/io `jɔ`, m `m`, n `n`, ng `ŋ`, hm `hm`,
//!      hng `hŋ`;
//!    - tones: first `→`, second `↗`, third `↓`, fourth `↘`, neutral none. The mark goes right
//!      after the syllable's nucleus vowel, before a nasal coda (中 `ꭧʊ→ŋ`), which is where the
//!      training transcription put it.
//!
//!    Syllables of one word are written together and words are separated by a space, as in the
//!    training data.
//! 6. **Punctuation** maps to Kokoro's: `，`/`、` → `,`, `。` → `.`, `！` → `!`, `？` → `?`,
//!    `：` → `:`, `；` → `;`, quotes and book-title brackets → `“ ”`, `（）` → `( )`,
//!    `——` → `—`, `……` → `…`.
//!
//! Known limits: erhua is not merged into the previous syllable (儿 is spoken as its own `ɚ`
//! syllable, as the training front end did); segmentation errors can pick a wrong reading for a
//! polyphonic character; neutral tones come only from the dictionary. The v1.0 training front
//! end did not apply third-tone sandhi itself; the voices read `↗` as a rising tone, so marking
//! the sandhi makes the spoken tone explicit rather than leaving it to the model.

use std::sync::OnceLock;

use pinyin::ToPinyin;

/// Which writing system a run of text is in, as [`split_scripts`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Chinese characters and everything that is not a Latin word (punctuation, spaces).
    Han,
    /// A run of Latin-script words (letters, with digits, spaces, apostrophes, hyphens and
    /// periods inside the run).
    Latin,
}

/// Cuts `text` into alternating Han and Latin runs. Concatenating the runs gives back `text`
/// exactly. A Latin run starts and ends with a Latin letter or digit and starts with a letter;
/// spaces and punctuation around it stay in the neighbouring Han run.
pub fn split_scripts(text: &str) -> Vec<(Script, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<(Script, String)> = Vec::new();
    let mut push = |script: Script, s: String| {
        if s.is_empty() {
            return;
        }
        match out.last_mut() {
            Some((last, buf)) if *last == script => buf.push_str(&s),
            _ => out.push((script, s)),
        }
    };
    let mut i = 0;
    while i < chars.len() {
        if is_latin_letter(chars[i]) {
            let mut end = i;
            let mut j = i;
            while j < chars.len() {
                let c = chars[j];
                if is_latin_letter(c) || c.is_ascii_digit() {
                    end = j;
                } else if !matches!(c, ' ' | '\'' | '’' | '-' | '.' | '&') {
                    break;
                }
                j += 1;
            }
            push(Script::Latin, chars[i..=end].iter().collect());
            i = end + 1;
        } else {
            push(Script::Han, chars[i].to_string());
            i += 1;
        }
    }
    out
}

/// Turns Mandarin text (digits already normalized to Chinese) into Kokoro v1.0's Mandarin
/// phoneme string. Every character of the result is in Kokoro's phoneme vocabulary. Latin
/// letters, digits and other symbols that have no Mandarin reading are left out: use
/// [`split_scripts`] first to phonemize Latin runs with the English path.
pub fn to_kokoro_phonemes(text: &str) -> String {
    let mut out = String::new();
    for piece in pieces(text) {
        match piece {
            Piece::Words(words) => {
                for (k, word) in words.iter().enumerate() {
                    if k > 0 {
                        out.push(' ');
                    }
                    for syl in &word.syllables {
                        out.push_str(&syllable_phonemes(&syl.base, syl.tone));
                    }
                }
            }
            Piece::Other(c) => out.push_str(&punctuation(c)),
        }
    }
    collapse_spaces(&out)
}

/// The pinyin (tone numbers 1–5, `v` for ü) of the Han characters in `text` after tone sandhi,
/// one entry per syllable in text order. Useful to check readings; the phoneme step uses exactly
/// these.
pub fn to_pinyin(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in pieces(text) {
        if let Piece::Words(words) = piece {
            for word in words {
                for syl in word.syllables {
                    out.push(format!("{}{}", syl.base, syl.tone));
                }
            }
        }
    }
    out
}

/// One pinyin syllable with tone number (`zhong1`, `lv4`, `de5`, or without a number for the
/// neutral tone) to Kokoro's phonemes, or `None` when it is not a Mandarin syllable.
pub fn syllable_to_kokoro(pinyin: &str) -> Option<String> {
    let (base, tone) = split_tone(pinyin)?;
    decompose(&base)?;
    Some(syllable_phonemes(&base, tone))
}

#[derive(Debug, Clone)]
struct Syllable {
    ch: char,
    base: String,
    tone: u8,
}

#[derive(Debug, Clone)]
struct Word {
    syllables: Vec<Syllable>,
}

enum Piece {
    Words(Vec<Word>),
    Other(char),
}

fn jieba() -> &'static jieba_rs::Jieba {
    static JIEBA: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    JIEBA.get_or_init(jieba_rs::Jieba::new)
}

fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3007 | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2EBEF | 0x30000..=0x323AF)
}

fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || (matches!(c as u32, 0xC0..=0x24F) && c.is_alphabetic())
}

/// Splits text into runs of Han words (with readings and sandhi) and single other characters.
fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut run = String::new();
    for c in text.chars() {
        if is_han(c) {
            run.push(c);
        } else {
            if !run.is_empty() {
                out.push(Piece::Words(read_run(&run)));
                run.clear();
            }
            out.push(Piece::Other(c));
        }
    }
    if !run.is_empty() {
        out.push(Piece::Words(read_run(&run)));
    }
    out
}

/// Segments one run of Han characters and reads it, with tone sandhi. Traditional characters
/// are read through their simplified forms, which the segmenter and the dictionary know.
fn read_run(run: &str) -> Vec<Word> {
    let simplified = fast2s::convert(run);
    let mut words: Vec<Word> = jieba()
        .cut(&simplified, true)
        .into_iter()
        .map(|t| Word {
            syllables: read_word(t.word),
        })
        .filter(|w| !w.syllables.is_empty())
        .collect();
    yi_bu_sandhi(&mut words);
    third_tone_sandhi(&mut words);
    words
}

/// The readings of one segmented word: dictionary words first, then single characters.
fn read_word(word: &str) -> Vec<Syllable> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = Vec::with_capacity(chars.len());
    if chars.len() >= 2 {
        let mut pos = 0;
        for (text, reading) in pinyin_phrases::match_word_pinyin(word) {
            let seg: Vec<char> = text.chars().collect();
            let at = match find_at(&chars, pos, &seg) {
                Some(at) => at,
                None => continue,
            };
            for &c in &chars[pos..at] {
                out.extend(char_syllable(c));
            }
            pos = at + seg.len();
            // Single characters take the per-character reading, not the dictionary's.
            match (seg.len() >= 2)
                .then(|| phrase_syllables(&seg, &reading))
                .flatten()
            {
                Some(syls) => out.extend(syls),
                None => seg.iter().for_each(|&c| out.extend(char_syllable(c))),
            }
        }
        for &c in &chars[pos..] {
            out.extend(char_syllable(c));
        }
    } else {
        for c in chars {
            out.extend(char_syllable(c));
        }
    }
    out
}

fn find_at(hay: &[char], from: usize, needle: &[char]) -> Option<usize> {
    if needle.is_empty() || from >= hay.len() {
        return None;
    }
    (from..=hay.len().saturating_sub(needle.len())).find(|&i| hay[i..i + needle.len()] == *needle)
}

/// A dictionary reading (tone marks, one syllable per character) as syllables.
fn phrase_syllables(chars: &[char], reading: &str) -> Option<Vec<Syllable>> {
    let numbered = pinyin_phrases::PinyinResult::new(vec![pinyin_phrases::PinyinWord::new(
        chars.iter().collect::<String>(),
        reading,
    )])
    .with_tone_style(pinyin_phrases::ToneStyle::Number)
    .yu_to_v()
    .to_string_with(" ");
    let parts: Vec<&str> = numbered.split_whitespace().collect();
    if parts.len() != chars.len() {
        return None;
    }
    chars
        .iter()
        .zip(parts)
        .map(|(&ch, p)| {
            let (base, tone) = split_tone(p)?;
            decompose(&base)?;
            Some(Syllable { ch, base, tone })
        })
        .collect()
}

/// The most common reading of one character.
fn char_syllable(ch: char) -> Option<Syllable> {
    let p = ch.to_pinyin()?;
    let (base, tone) = split_tone(p.with_tone_num_end())?;
    decompose(&base)?;
    Some(Syllable { ch, base, tone })
}

/// `zhong1` → (`zhong`, 1); `de` → (`de`, 5); ü is written `v`.
fn split_tone(p: &str) -> Option<(String, u8)> {
    let p = p
        .trim()
        .to_lowercase()
        .replace(['ü', 'ǖ', 'ǘ', 'ǚ', 'ǜ'], "v");
    let p = p.replace("u:", "v");
    let (base, tone) = match p.chars().last()? {
        d @ '1'..='5' => (&p[..p.len() - 1], d as u8 - b'0'),
        _ => (p.as_str(), 5),
    };
    if base.is_empty() || !base.chars().all(|c| c.is_ascii_lowercase() || c == 'ê') {
        return None;
    }
    Some((base.to_string(), tone))
}

const NUMERALS: &str = "零〇一二三四五六七八九十百千万亿两";
const DIGITS: &str = "零〇一二三四五六七八九";

fn yi_bu_sandhi(words: &mut [Word]) {
    let flat: Vec<(usize, usize)> = words
        .iter()
        .enumerate()
        .flat_map(|(w, word)| (0..word.syllables.len()).map(move |s| (w, s)))
        .collect();
    let get = |words: &[Word], k: usize| -> Syllable {
        let (w, s) = flat[k];
        words[w].syllables[s].clone()
    };
    for k in 0..flat.len() {
        let cur = get(words, k);
        let prev = k.checked_sub(1).map(|p| get(words, p));
        let next = flat.get(k + 1).map(|_| get(words, k + 1));
        let tone = match (cur.ch, cur.base.as_str()) {
            ('不', "bu") => {
                if cur.tone == 5 && next.is_some() {
                    5
                } else if next.as_ref().is_some_and(|n| n.tone == 4) {
                    2
                } else {
                    4
                }
            }
            ('一', "yi") => {
                let prev_ch = prev.as_ref().map(|p| p.ch);
                let next_ch = next.as_ref().map(|n| n.ch);
                if prev_ch.is_some_and(|c| c == '第' || NUMERALS.contains(c))
                    || next_ch.is_none_or(|c| DIGITS.contains(c))
                {
                    1
                } else if prev_ch.is_some() && prev_ch == next_ch {
                    5
                } else if next.as_ref().is_some_and(|n| n.tone == 4 || n.tone == 5) {
                    2
                } else {
                    4
                }
            }
            _ => continue,
        };
        let (w, s) = flat[k];
        words[w].syllables[s].tone = tone;
    }
}

fn third_tone_sandhi(words: &mut [Word]) {
    for word in words.iter_mut() {
        let n = word.syllables.len();
        for i in 0..n.saturating_sub(1) {
            let digit_pair =
                DIGITS.contains(word.syllables[i].ch) && DIGITS.contains(word.syllables[i + 1].ch);
            if word.syllables[i].tone == 3 && word.syllables[i + 1].tone == 3 && !digit_pair {
                word.syllables[i].tone = 2;
            }
        }
    }
    for w in 0..words.len().saturating_sub(1) {
        let single = words[w].syllables.len() == 1;
        let next_first = words[w + 1].syllables[0].tone;
        if let Some(last) = words[w].syllables.last_mut()
            && single
            && last.tone == 3
            && next_first == 3
        {
            last.tone = 2;
        }
    }
}

/// The parts of a syllable: an initial (pinyin spelling) and a final in its full form
/// (`iou`, `uei`, `uen`, `v…` for ü), or a whole-syllable reading.
#[derive(Debug, PartialEq)]
enum Parts {
    Regular {
        initial: &'static str,
        final_: String,
    },
    Whole(&'static str),
}

const INITIALS: [&str; 21] = [
    "zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r",
    "z", "c", "s",
];

fn decompose(base: &str) -> Option<Parts> {
    let whole = match base {
        "er" => Some("ɚ"),
        "o" => Some("ɔ"),
        "ê" | "ea" => Some("ɛ"),
        "io" | "yo" => Some("jɔ"),
        "m" => Some("m"),
        "n" => Some("n"),
        "ng" => Some("ŋ"),
        "hm" => Some("hm"),
        "hng" => Some("hŋ"),
        _ => None,
    };
    if let Some(w) = whole {
        return Some(Parts::Whole(w));
    }
    let (initial, rest) = if let Some(rest) = base.strip_prefix('y') {
        let f = match rest {
            "i" => "i".to_string(),
            "in" => "in".to_string(),
            "ing" => "ing".to_string(),
            "ou" => "iou".to_string(),
            "u" | "v" => "v".to_string(),
            r if r.starts_with('u') || r.starts_with('v') => format!("v{}", &r[1..]),
            r => format!("i{r}"),
        };
        ("", f)
    } else if let Some(rest) = base.strip_prefix('w') {
        let f = match rest {
            "u" => "u".to_string(),
            "ei" => "uei".to_string(),
            "en" => "uen".to_string(),
            r => format!("u{r}"),
        };
        ("", f)
    } else {
        let initial = INITIALS
            .iter()
            .find(|i| base.starts_with(**i))
            .copied()
            .unwrap_or("");
        let mut f = base[initial.len()..].to_string();
        if matches!(initial, "j" | "q" | "x") && f.starts_with('u') {
            f.replace_range(0..1, "v");
        }
        if matches!(initial, "n" | "l") && f == "ue" {
            f = "ve".to_string();
        }
        f = match f.as_str() {
            "iu" => "iou".to_string(),
            "ui" => "uei".to_string(),
            "un" => "uen".to_string(),
            _ => f,
        };
        (initial, f)
    };
    final_parts(&rest)?;
    Some(Parts::Regular {
        initial,
        final_: rest,
    })
}

/// A final as (medial, nucleus, coda) in Kokoro's symbols.
fn final_parts(f: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match f {
        "a" => ("", "a", ""),
        "ai" => ("", "ai", ""),
        "an" => ("", "a", "n"),
        "ang" => ("", "a", "ŋ"),
        "ao" => ("", "au", ""),
        "e" => ("", "ɤ", ""),
        "ei" => ("", "ei", ""),
        "en" => ("", "ə", "n"),
        "eng" => ("", "ə", "ŋ"),
        "i" => ("", "i", ""),
        "ia" => ("j", "a", ""),
        "ian" => ("j", "ɛ", "n"),
        "iang" => ("j", "a", "ŋ"),
        "iao" => ("j", "au", ""),
        "ie" => ("j", "e", ""),
        "in" => ("", "i", "n"),
        "iou" => ("j", "ou", ""),
        "ing" => ("", "i", "ŋ"),
        "iong" => ("j", "ʊ", "ŋ"),
        "ong" => ("", "ʊ", "ŋ"),
        "ou" => ("", "ou", ""),
        "u" => ("", "u", ""),
        "ua" => ("w", "a", ""),
        "uai" => ("w", "ai", ""),
        "uan" => ("w", "a", "n"),
        "uang" => ("w", "a", "ŋ"),
        "uei" => ("w", "ei", ""),
        "uen" => ("w", "ə", "n"),
        "ueng" => ("w", "ə", "ŋ"),
        "uo" | "o" => ("w", "o", ""),
        "v" => ("", "y", ""),
        "ve" => ("ɥ", "e", ""),
        "van" => ("ɥ", "ɛ", "n"),
        "vn" => ("", "y", "n"),
        _ => return None,
    })
}

fn initial_phonemes(initial: &str) -> &'static str {
    match initial {
        "b" => "p",
        "p" => "pʰ",
        "m" => "m",
        "f" => "f",
        "d" => "t",
        "t" => "tʰ",
        "n" => "n",
        "l" => "l",
        "g" => "k",
        "k" => "kʰ",
        "h" => "x",
        "j" => "ʨ",
        "q" => "ʨʰ",
        "x" => "ɕ",
        "zh" => "ꭧ",
        "ch" => "ꭧʰ",
        "sh" => "ʂ",
        "r" => "ɻ",
        "z" => "ʦ",
        "c" => "ʦʰ",
        "s" => "s",
        _ => "",
    }
}

fn tone_mark(tone: u8) -> &'static str {
    match tone {
        1 => "→",
        2 => "↗",
        3 => "↓",
        4 => "↘",
        _ => "",
    }
}

/// One syllable in Kokoro's symbols; the tone mark follows the nucleus.
fn syllable_phonemes(base: &str, tone: u8) -> String {
    match decompose(base) {
        Some(Parts::Whole(w)) => {
            // io/yo carry the tone after the vowel like any final; the rest are one sound.
            format!("{w}{}", tone_mark(tone))
        }
        Some(Parts::Regular { initial, final_ }) => {
            let Some((medial, nucleus, coda)) = final_parts(&final_) else {
                return String::new();
            };
            let nucleus =
                if final_ == "i" && matches!(initial, "zh" | "ch" | "sh" | "r" | "z" | "c" | "s") {
                    "ɨ"
                } else {
                    nucleus
                };
            format!(
                "{}{medial}{nucleus}{}{coda}",
                initial_phonemes(initial),
                tone_mark(tone)
            )
        }
        None => String::new(),
    }
}

/// Kokoro's rendering of one non-Han character: mapped punctuation with the spacing the
/// training text had, a space for whitespace, nothing for what Mandarin does not read.
fn punctuation(c: char) -> String {
    let s = match c {
        '，' | '、' | ',' | '､' => ", ",
        '。' | '．' | '.' | '｡' => ". ",
        '！' | '!' => "! ",
        '？' | '?' => "? ",
        '：' | ':' => ": ",
        '；' | ';' => "; ",
        '“' | '‘' | '「' | '『' | '《' | '〈' | '【' | '〖' | '«' => " “",
        '”' | '’' | '」' | '』' | '》' | '〉' | '】' | '〗' | '»' => "” ",
        '"' => "\"",
        '（' | '(' | '［' | '[' | '｛' | '{' => " (",
        '）' | ')' | '］' | ']' | '｝' | '}' => ") ",
        '—' | '―' | '－' | '–' => "—",
        '…' | '⋯' => "…",
        '·' | '・' | '～' | '~' | '/' | '-' | '_' => " ",
        c if c.is_whitespace() => " ",
        // Left out, but it still separates the words around it.
        _ => " ",
    };
    s.to_string()
}

/// Collapses runs of spaces, drops spaces before closing punctuation and repeated dashes or
/// ellipses, and trims.
fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' if out.is_empty()
                || out.ends_with(' ')
                || out.ends_with('“')
                || out.ends_with('(') => {}
            ',' | '.' | '!' | '?' | ':' | ';' | '”' | ')' if out.ends_with(' ') => {
                out.pop();
                out.push(c);
            }
            '—' | '…' if out.ends_with(c) => {}
            _ => out.push(c),
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(text: &str) -> String {
        to_pinyin(text).join(" ")
    }

    #[test]
    fn polyphones_follow_the_word() {
        let cases = [
            ("银行", "yin2 hang2"),
            ("行走", "xing2 zou3"),
            ("重要", "zhong4 yao4"),
            ("重新", "chong2 xin1"),
            ("长大", "zhang3 da4"),
            ("长度", "chang2 du4"),
            ("音乐", "yin1 yue4"),
            ("快乐", "kuai4 le4"),
            ("睡觉", "shui4 jiao4"),
            ("觉得", "jue2 de5"),
            ("便宜", "pian2 yi2"),
            ("方便", "fang1 bian4"),
            ("会计", "kuai4 ji4"),
            ("数学", "shu4 xue2"),
            ("朝代", "chao2 dai4"),
        ];
        for (text, want) in cases {
            assert_eq!(py(text), want, "{text}");
        }
    }

    #[test]
    fn polyphones_in_a_sentence() {
        assert_eq!(
            py("我去银行取钱，然后行走回家。"),
            "wo3 qu4 yin2 hang2 qu3 qian2 ran2 hou4 xing2 zou3 hui2 jia1"
        );
        assert_eq!(py("孩子长大了"), "hai2 zi5 zhang3 da4 le5");
    }

    #[test]
    fn third_tone_sandhi() {
        let cases = [
            ("你好", "ni2 hao3"),
            ("很好", "hen2 hao3"),
            ("展览馆", "zhan2 lan2 guan3"),
            ("水果", "shui2 guo3"),
            ("我想", "wo2 xiang3"),
            ("我很好", "wo2 hen2 hao3"),
            ("老虎很可怕", "lao2 hu3 hen2 ke3 pa4"),
            ("你想不想去", "ni2 xiang3 bu4 xiang3 qu4"),
            // Not two third tones: no change.
            ("好人", "hao3 ren2"),
            ("老师", "lao3 shi1"),
        ];
        for (text, want) in cases {
            assert_eq!(py(text), want, "{text}");
        }
    }

    #[test]
    fn yi_and_bu_sandhi() {
        let cases = [
            ("一个", "yi2 ge4"),
            ("一天", "yi4 tian1"),
            ("一年", "yi4 nian2"),
            ("一起", "yi4 qi3"),
            ("一样", "yi2 yang4"),
            ("第一", "di4 yi1"),
            ("十一", "shi2 yi1"),
            ("一九九九", "yi1 jiu3 jiu3 jiu3"),
            ("看一看", "kan4 yi5 kan4"),
            ("不是", "bu2 shi4"),
            ("不对", "bu2 dui4"),
            ("不好", "bu4 hao3"),
            ("不行", "bu4 xing2"),
            ("不吃", "bu4 chi1"),
        ];
        for (text, want) in cases {
            assert_eq!(py(text), want, "{text}");
        }
        // A lone 一 at the end of a run keeps its first tone.
        assert_eq!(py("一"), "yi1");
        assert_eq!(py("不"), "bu4");
    }

    #[test]
    fn syllables_per_initial_and_final_class() {
        let cases = [
            // Unaspirated / aspirated stops and affricates.
            ("ba1", "pa→"),
            ("pa4", "pʰa↘"),
            ("da4", "ta↘"),
            ("ta1", "tʰa→"),
            ("ge4", "kɤ↘"),
            ("ke3", "kʰɤ↓"),
            ("zi4", "ʦɨ↘"),
            ("ci2", "ʦʰɨ↗"),
            ("si1", "sɨ→"),
            ("zhi1", "ꭧɨ→"),
            ("chi1", "ꭧʰɨ→"),
            ("shi4", "ʂɨ↘"),
            ("ri4", "ɻɨ↘"),
            ("ji1", "ʨi→"),
            ("qi3", "ʨʰi↓"),
            ("xi1", "ɕi→"),
            ("hao3", "xau↓"),
            ("ma1", "ma→"),
            ("fa1", "fa→"),
            ("na4", "na↘"),
            ("la5", "la"),
            // Nasal codas put the tone before the coda.
            ("zhong1", "ꭧʊ→ŋ"),
            ("guo2", "kwo↗"),
            ("ren2", "ɻə↗n"),
            ("sheng1", "ʂə→ŋ"),
            ("ban1", "pa→n"),
            ("bang4", "pa↘ŋ"),
            ("xin1", "ɕi→n"),
            ("ming2", "mi↗ŋ"),
            // Medials.
            ("jia1", "ʨja→"),
            ("tian1", "tʰjɛ→n"),
            ("liang3", "lja↓ŋ"),
            ("xie4", "ɕje↘"),
            ("niao3", "njau↓"),
            ("liu2", "ljou↗"),
            ("xiong2", "ɕjʊ↗ŋ"),
            ("hua1", "xwa→"),
            ("kuai4", "kʰwai↘"),
            ("dui4", "twei↘"),
            ("chuan2", "ꭧʰwa↗n"),
            ("lun2", "lwə↗n"),
            ("shuang1", "ʂwa→ŋ"),
            ("wo3", "wo↓"),
            ("bo1", "pwo→"),
            ("wei4", "wei↘"),
            ("wen2", "wə↗n"),
            ("weng1", "wə→ŋ"),
            ("wu3", "u↓"),
            ("yi1", "i→"),
            ("ya2", "ja↗"),
            ("you3", "jou↓"),
            ("yong3", "jʊ↓ŋ"),
            ("ying1", "i→ŋ"),
            // ü.
            ("lv4", "ly↘"),
            ("nve4", "nɥe↘"),
            ("ju2", "ʨy↗"),
            ("xue2", "ɕɥe↗"),
            ("quan2", "ʨʰɥɛ↗n"),
            ("jun1", "ʨy→n"),
            ("yu2", "y↗"),
            ("yue4", "ɥe↘"),
            ("yuan2", "ɥɛ↗n"),
            ("yun2", "y↗n"),
            // Whole syllables.
            ("er4", "ɚ↘"),
            ("er5", "ɚ"),
            ("o4", "ɔ↘"),
            ("ng2", "ŋ↗"),
            ("hm5", "hm"),
            ("e4", "ɤ↘"),
            ("ai4", "ai↘"),
            ("ou1", "ou→"),
            ("ang2", "a↗ŋ"),
        ];
        for (p, want) in cases {
            assert_eq!(syllable_to_kokoro(p).as_deref(), Some(want), "{p}");
        }
        assert_eq!(syllable_to_kokoro("xyz1"), None);
        assert_eq!(syllable_to_kokoro("hello"), None);
        assert_eq!(syllable_to_kokoro(""), None);
    }

    #[test]
    fn phoneme_strings_for_sentences() {
        assert_eq!(to_kokoro_phonemes("你好"), "ni↗xau↓");
        assert_eq!(to_kokoro_phonemes("中国"), "ꭧʊ→ŋkwo↗");
        assert_eq!(to_kokoro_phonemes("你好，世界！"), "ni↗xau↓, ʂɨ↘ʨje↘!");
        assert_eq!(to_kokoro_phonemes("我是学生。"), "wo↓ ʂɨ↘ ɕɥe↗ʂəŋ.");
        assert_eq!(to_kokoro_phonemes("银行"), "i↗nxa↗ŋ");
    }

    #[test]
    fn punctuation_maps_to_kokoro() {
        let cases = [
            ("好，", "xau↓,"),
            ("好。好", "xau↓. xau↓"),
            ("好！", "xau↓!"),
            ("好？", "xau↓?"),
            ("好、好", "xau↓, xau↓"),
            ("好：好", "xau↓: xau↓"),
            ("好；好", "xau↓; xau↓"),
            ("《好》", "“xau↓”"),
            ("「好」", "“xau↓”"),
            ("“好”", "“xau↓”"),
            ("好（好）", "xau↓ (xau↓)"),
            ("好——好", "xau↓—xau↓"),
            ("好……", "xau↓…"),
        ];
        for (text, want) in cases {
            assert_eq!(to_kokoro_phonemes(text), want, "{text}");
        }
    }

    #[test]
    fn what_has_no_reading_is_left_out() {
        assert_eq!(to_kokoro_phonemes("好 OK 好"), "xau↓ xau↓");
        assert_eq!(to_kokoro_phonemes("喜欢Rust语言"), "ɕi↓xwan y↓jɛ↗n");
        assert_eq!(to_kokoro_phonemes("😀"), "");
        assert_eq!(to_kokoro_phonemes(""), "");
        assert_eq!(to_kokoro_phonemes("  好  "), "xau↓");
    }

    #[test]
    fn erhua_is_its_own_syllable() {
        let p = py("玩儿");
        assert!(p.starts_with("wan2 er"), "{p}");
        assert!(to_kokoro_phonemes("玩儿").starts_with("wa↗nɚ"));
    }

    #[test]
    fn split_scripts_separates_latin_runs() {
        use Script::{Han, Latin};
        let s = |v: &[(Script, &str)]| -> Vec<(Script, String)> {
            v.iter().map(|(k, t)| (*k, t.to_string())).collect()
        };
        assert_eq!(
            split_scripts("我喜欢Rust语言"),
            s(&[(Han, "我喜欢"), (Latin, "Rust"), (Han, "语言")])
        );
        assert_eq!(
            split_scripts("我用 iPhone 15 打电话。"),
            s(&[(Han, "我用 "), (Latin, "iPhone 15"), (Han, " 打电话。")])
        );
        assert_eq!(
            split_scripts("他说：I don't know. 然后走了"),
            s(&[
                (Han, "他说："),
                (Latin, "I don't know"),
                (Han, ". 然后走了")
            ])
        );
        assert_eq!(split_scripts("中文"), s(&[(Han, "中文")]));
        assert_eq!(split_scripts("hello world"), s(&[(Latin, "hello world")]));
        assert_eq!(
            split_scripts("Café 咖啡"),
            s(&[(Latin, "Café"), (Han, " 咖啡")])
        );
        assert!(split_scripts("").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn split_scripts_is_lossless(text in "[a-zA-Z0-9 ,.'\\-一-龥，。！？]{0,40}") {
            let joined: String = split_scripts(&text).into_iter().map(|(_, t)| t).collect();
            proptest::prop_assert_eq!(joined, text);
        }

        #[test]
        fn phonemes_never_panic(text in "\\PC{0,40}") {
            let _ = to_kokoro_phonemes(&text);
        }
    }

    /// Kokoro's phoneme vocabulary from the neural-voice fixtures (`make fixtures`).
    fn vocabulary() -> std::collections::HashSet<char> {
        let dir = std::env::var_os("AIMAKE_FIXTURES")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| std::path::PathBuf::from(h).join(".cache/aimake/fixtures"))
            })
            .expect("neither AIMAKE_FIXTURES nor HOME is set");
        let path = dir.join("vocab.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "Kokoro's vocabulary {} is missing ({e}); run `make fixtures` first",
                path.display()
            )
        });
        let json: serde_json::Value = serde_json::from_str(&text).expect("vocab.json is JSON");
        let map = json
            .get("vocab")
            .and_then(|v| v.as_object())
            .expect("vocab.json has a \"vocab\" object");
        map.keys()
            .map(|k| {
                let mut it = k.chars();
                let c = it.next().expect("empty vocabulary key");
                assert!(
                    it.next().is_none(),
                    "vocabulary key {k:?} is not one symbol"
                );
                c
            })
            .collect()
    }

    #[test]
    fn output_uses_only_vocabulary_symbols() {
        let vocab = vocabulary();
        let sample = "今天天气很好，我们一起去公园散步吧！你知道吗？北京是中华人民共和国的首都，\
            有三千多年的历史。《红楼梦》是中国古典小说的巅峰之作；曹雪芹写了很多年。\
            这件事情非常重要：我们要重新开始，不能放弃。孩子们长大了，学会了唱歌、跳舞和画画儿。\
            银行的工作人员说：“请稍等一下。”女儿、儿童、二十、而且、耳朵。嗯，哦，呣，哼，欸。\
            略微、虐待、旅游、绿色、决定、全部、学习、选择、军队、云彩、月亮、远方、圆圈。\
            日子、热情、自己、词语、思想、知识、吃饭、十分、钟表、春天、生日、酸甜苦辣。\
            瓦特、外面、万一、王者、翁仲、我们、乌云。雪花飘飘（很美）——真是……太好了！\
            一二三四五六七八九十百千万亿零。第一名，看一看，一心一意，不三不四，差不多。";
        let out = to_kokoro_phonemes(sample);
        assert!(out.chars().count() > 400, "{out}");
        let missing: Vec<char> = out.chars().filter(|c| !vocab.contains(c)).collect();
        assert!(
            missing.is_empty(),
            "symbols outside the vocabulary: {missing:?} in {out}"
        );
        // Every Han character of the sample was read.
        let han = sample.chars().filter(|&c| is_han(c)).count();
        assert_eq!(to_pinyin(sample).len(), han);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn random_text_uses_only_vocabulary_symbols(
            text in "[一-龥，。！？、：；“”《》（）……—— a-zA-Z0-9😀]{1,30}"
        ) {
            let vocab = vocabulary();
            let out = to_kokoro_phonemes(&text);
            let missing: Vec<char> = out.chars().filter(|c| !vocab.contains(c)).collect();
            proptest::prop_assert!(missing.is_empty(), "{:?} → {:?}: {:?}", text, out, missing);
        }
    }

    #[test]
    fn traditional_characters_are_read() {
        assert_eq!(py("學習"), "xue2 xi2");
        assert_eq!(py("銀行"), "yin2 hang2");
    }
}
