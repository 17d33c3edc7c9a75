//! Splitting long text into pieces that fit a provider's per-request limit.
//!
//! Text is cut at sentence ends first (`.!?…` before whitespace, `。！？；`, line breaks), and
//! sentences are packed greedily so each chunk comes close to the limit. Only a sentence longer
//! than the limit is cut further: at clause marks (`,;:` before whitespace, `，、：` and the
//! em dash), then between words, and as a last resort inside a word at a character boundary
//! (keeping combining marks, joiners and variation selectors with their base character when
//! that fits). Whitespace stays with the text it follows, so the chunks concatenate back to
//! the input exactly.
//!
//! A chunk is whitespace-only only where the input has whitespace runs about as long as the
//! limit (or is all whitespace); callers skip such chunks rather than send them.

use std::ops::Range;

/// How a provider measures the length of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Unicode scalar values (ElevenLabs, OpenAI's "characters").
    Chars,
    /// UTF-16 code units, as JavaScript's `length` counts (emoji count 2).
    Utf16,
    /// UTF-8 bytes.
    Utf8Bytes,
    /// CJK ideographs, kana, hangul and full-width forms cost `wide`, anything else `narrow`:
    /// for limits stated as "N Chinese characters or M letters" (see
    /// [`crate::providers::Counting`]).
    Weighted { wide: usize, narrow: usize },
}

impl Counter {
    /// The length of `text` as the provider counts it.
    pub fn count(&self, text: &str) -> usize {
        match self {
            Self::Chars => text.chars().count(),
            Self::Utf16 => text.encode_utf16().count(),
            Self::Utf8Bytes => text.len(),
            Self::Weighted { .. } => text.chars().map(|c| self.char_cost(c)).sum(),
        }
    }

    fn char_cost(&self, c: char) -> usize {
        match *self {
            Self::Chars => 1,
            Self::Utf16 => c.len_utf16(),
            Self::Utf8Bytes => c.len_utf8(),
            Self::Weighted { wide, narrow } => {
                if crate::providers::is_wide(c) {
                    wide
                } else {
                    narrow
                }
            }
        }
    }

    /// The most a single character can cost: a limit below it cannot be honoured.
    pub fn max_char_cost(&self) -> usize {
        match *self {
            Self::Chars => 1,
            Self::Utf16 => 2,
            Self::Utf8Bytes => 4,
            Self::Weighted { wide, narrow } => wide.max(narrow).max(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a limit of {limit} cannot hold a character costing up to {needed}")]
pub struct LimitTooSmall {
    pub limit: usize,
    pub needed: usize,
}

/// Splits `text` for one provider request limit (see [`crate::providers::Tts::limits`]).
pub fn split_for<'a>(
    text: &'a str,
    limit: &crate::providers::TextLimit,
) -> Result<Vec<&'a str>, LimitTooSmall> {
    let counter = match limit.counting {
        crate::providers::Counting::Chars => Counter::Chars,
        crate::providers::Counting::Weighted { wide, narrow } => Counter::Weighted { wide, narrow },
    };
    let chunks = split(text, limit.max_units, counter)?;
    // Whitespace-only pieces carry nothing to say.
    Ok(chunks
        .into_iter()
        .filter(|c| !c.trim().is_empty())
        .collect())
}

/// As [`split_for`], with a first chunk of at most `first` units and each later one twice the
/// one before, up to the limit: a provider that synthesizes chunks one after another then has
/// the first audio ready quickly, and every next chunk ready before the audio before it has
/// played (as long as it synthesizes faster than real time).
pub fn split_ramped<'a>(
    text: &'a str,
    limit: &crate::providers::TextLimit,
    first: usize,
) -> Result<Vec<&'a str>, LimitTooSmall> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut cap = first.max(1);
    while !rest.is_empty() {
        if cap >= limit.max_units {
            out.extend(split_for(rest, limit)?);
            break;
        }
        let step = crate::providers::TextLimit {
            max_units: cap,
            ..*limit
        };
        let pieces = split_for(rest, &step)?;
        let Some(piece) = pieces.first() else { break };
        out.push(*piece);
        // Pieces are slices of `rest`: continue right after this one.
        let end = piece.as_ptr() as usize - rest.as_ptr() as usize + piece.len();
        rest = &rest[end..];
        cap = cap.saturating_mul(2);
    }
    Ok(out)
}

/// Splits `text` into consecutive slices, each at most `limit` by `counter`, that concatenate
/// back to `text`. Empty text gives no chunks.
pub fn split(text: &str, limit: usize, counter: Counter) -> Result<Vec<&str>, LimitTooSmall> {
    let needed = counter.max_char_cost();
    if limit < needed {
        return Err(LimitTooSmall { limit, needed });
    }
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut pieces = Vec::new();
    pieces_of(
        text,
        0..text.len(),
        Level::Sentence,
        limit,
        counter,
        &mut pieces,
    );

    // Greedy packing: pieces are adjacent, so a chunk is the span from its first piece's start
    // to its last piece's end.
    let mut chunks: Vec<(Range<usize>, usize)> = Vec::new();
    for (range, cost) in pieces {
        match chunks.last_mut() {
            Some((open, open_cost)) if *open_cost + cost <= limit => {
                open.end = range.end;
                *open_cost += cost;
            }
            _ => chunks.push((range, cost)),
        }
    }
    absorb_blank_chunks(text, &mut chunks, limit);
    Ok(chunks.into_iter().map(|(range, _)| &text[range]).collect())
}

/// A whitespace-only chunk (left by a long whitespace run) joins a neighbour when it fits.
fn absorb_blank_chunks(text: &str, chunks: &mut Vec<(Range<usize>, usize)>, limit: usize) {
    let mut i = 0;
    while i < chunks.len() {
        if !text[chunks[i].0.clone()].trim().is_empty() || chunks.len() == 1 {
            i += 1;
            continue;
        }
        let cost = chunks[i].1;
        if i > 0 && chunks[i - 1].1 + cost <= limit {
            let (range, _) = chunks.remove(i);
            chunks[i - 1].0.end = range.end;
            chunks[i - 1].1 += cost;
        } else if i + 1 < chunks.len() && chunks[i + 1].1 + cost <= limit {
            let (range, _) = chunks.remove(i);
            chunks[i].0.start = range.start;
            chunks[i].1 += cost;
        } else {
            i += 1;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Level {
    Sentence,
    Clause,
    Word,
}

/// Cuts `range` into units of `level`, recursing into the next level for units over the limit.
fn pieces_of(
    text: &str,
    range: Range<usize>,
    level: Level,
    limit: usize,
    counter: Counter,
    out: &mut Vec<(Range<usize>, usize)>,
) {
    let mut start = range.start;
    let ends = unit_ends(&text[range.clone()], level);
    for end in ends.into_iter().map(|e| range.start + e) {
        let unit = start..end;
        start = end;
        let cost = counter.count(&text[unit.clone()]);
        if cost <= limit {
            out.push((unit, cost));
            continue;
        }
        match level {
            Level::Sentence => pieces_of(text, unit, Level::Clause, limit, counter, out),
            Level::Clause => pieces_of(text, unit, Level::Word, limit, counter, out),
            Level::Word => hard_split(text, unit, limit, counter, out),
        }
    }
}

/// Byte offsets (relative to `text`) where units of `level` end; the last is `text.len()`.
fn unit_ends(text: &str, level: Level) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut chars = text.char_indices().peekable();
    // Leading whitespace joins the first unit with text, so no unit is blank.
    let mut has_text = false;
    while let Some((i, c)) = chars.next() {
        has_text |= !c.is_whitespace();
        let boundary = has_text
            && match level {
                Level::Sentence if is_line_break(c) => true,
                Level::Sentence if is_cjk_sentence_end(c) => {
                    skip_closers(&mut chars);
                    true
                }
                Level::Sentence if is_sentence_end(c) => {
                    skip_closers(&mut chars);
                    chars.peek().is_none_or(|&(_, n)| n.is_whitespace())
                }
                Level::Clause if is_cjk_clause_mark(c) => true,
                Level::Clause if is_clause_mark(c) => {
                    chars.peek().is_none_or(|&(_, n)| n.is_whitespace())
                }
                Level::Word => {
                    chars.peek().is_some_and(|&(_, n)| n.is_whitespace()) && !c.is_whitespace()
                }
                _ => false,
            };
        if !boundary {
            continue;
        }
        // Trailing whitespace stays with the unit it follows.
        let mut end = i + c.len_utf8();
        while let Some(&(j, n)) = chars.peek() {
            if !n.is_whitespace() {
                break;
            }
            end = j + n.len_utf8();
            chars.next();
        }
        if chars.peek().is_some() {
            ends.push(end);
            has_text = false;
        }
    }
    ends.push(text.len());
    ends
}

/// Skips the closing quotes and brackets, and further terminators, after a sentence end
/// (`"Really?!" she said.` ends after the quote).
fn skip_closers(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) {
    while chars
        .peek()
        .is_some_and(|&(_, n)| is_closer(n) || is_sentence_end(n) || is_cjk_sentence_end(n))
    {
        chars.next();
    }
}

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

fn is_sentence_end(c: char) -> bool {
    matches!(
        c,
        '.' | '!' | '?' | '…' | '‼' | '⁇' | '⁈' | '⁉' | '؟' | '।' | '॥' | '።'
    )
}

fn is_cjk_sentence_end(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '；' | '｡' | '︒')
}

fn is_clause_mark(c: char) -> bool {
    matches!(c, ',' | ';' | ':' | '،' | '؛')
}

fn is_cjk_clause_mark(c: char) -> bool {
    matches!(c, '，' | '、' | '：' | '﹐' | '﹑' | '﹕' | '､' | '—' | '–')
}

fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | ')'
            | ']'
            | '}'
            | '”'
            | '’'
            | '»'
            | '›'
            | '」'
            | '』'
            | '）'
            | '》'
            | '】'
            | '〉'
            | '〕'
            | '］'
            | '｝'
    )
}

/// Characters that belong to the one before them: combining marks, joiners, variation
/// selectors, emoji skin tones and tag characters. (The character after a zero-width joiner
/// belongs to it too.)
fn is_glue(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F
        | 0x200C | 0x200D | 0xFE00..=0xFE0F | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F
        | 0xE0100..=0xE01EF
    ) || matches!(c as u32, 0x0900..=0x0DFF if is_indic_mark(c))
}

/// Dependent vowel signs and viramas of the main Indic scripts (they follow a consonant).
fn is_indic_mark(c: char) -> bool {
    let offset = (c as u32 - 0x0900) % 0x80;
    matches!(offset, 0x00..=0x03 | 0x3A..=0x4F | 0x51..=0x57 | 0x62..=0x63)
}

/// Packs characters greedily up to the limit, moving a base character's trailing marks with it
/// when the whole cluster fits in a fresh chunk.
fn hard_split(
    text: &str,
    range: Range<usize>,
    limit: usize,
    counter: Counter,
    out: &mut Vec<(Range<usize>, usize)>,
) {
    let slice = &text[range.clone()];
    let mut clusters: Vec<(Range<usize>, usize)> = Vec::new();
    let mut after_joiner = false;
    for (i, c) in slice.char_indices() {
        let at = range.start + i;
        let cost = counter.char_cost(c);
        match clusters.last_mut() {
            Some((r, total)) if after_joiner || is_glue(c) => {
                r.end = at + c.len_utf8();
                *total += cost;
            }
            _ => clusters.push((at..at + c.len_utf8(), cost)),
        }
        after_joiner = c == '\u{200D}';
    }
    let mut open: Option<(Range<usize>, usize)> = None;
    let mut push_char =
        |r: Range<usize>, cost: usize, open: &mut Option<(Range<usize>, usize)>| match open {
            Some((o, total)) if *total + cost <= limit => {
                o.end = r.end;
                *total += cost;
            }
            _ => {
                if let Some(done) = open.take() {
                    out.push(done);
                }
                *open = Some((r, cost));
            }
        };
    for (cluster, cost) in clusters {
        if cost <= limit {
            push_char(cluster, cost, &mut open);
        } else {
            // A cluster longer than the limit (e.g. a long run of combining marks) is cut
            // between its characters.
            for (i, c) in text[cluster.clone()].char_indices() {
                let at = cluster.start + i;
                push_char(at..at + c.len_utf8(), counter.char_cost(c), &mut open);
            }
        }
    }
    if let Some(done) = open {
        out.push(done);
    }
}

#[cfg(test)]
mod ramp_tests {
    use super::*;
    use crate::providers::TextLimit;

    #[test]
    fn ramped_chunks_start_small_double_and_keep_all_the_text() {
        let sentence = "This is a sentence of some length, with a clause. ";
        let text = sentence.repeat(40);
        let chunks = split_ramped(&text, &TextLimit::chars(400), 60).unwrap();
        assert!(chunks[0].chars().count() <= 60, "{:?}", chunks[0]);
        assert!(chunks[1].chars().count() <= 120);
        assert!(chunks[2].chars().count() <= 240);
        assert!(chunks.iter().all(|c| c.chars().count() <= 400));
        assert!(chunks[3..].iter().any(|c| c.chars().count() > 240));
        let joined: String = chunks.concat();
        assert_eq!(
            joined.split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
        // The same text always splits the same way (resumed jobs reuse stored chunks).
        assert_eq!(
            chunks,
            split_ramped(&text, &TextLimit::chars(400), 60).unwrap()
        );
        assert!(
            split_ramped("", &TextLimit::chars(400), 60)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            split_ramped("Hi.", &TextLimit::chars(400), 60).unwrap(),
            ["Hi."]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunks(text: &str, limit: usize) -> Vec<&str> {
        split(text, limit, Counter::Chars).unwrap()
    }

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(
            chunks("Hello world. How are you?", 100),
            vec!["Hello world. How are you?"]
        );
        assert!(chunks("", 100).is_empty());
        assert_eq!(chunks("   \n ", 100), vec!["   \n "]);
    }

    #[test]
    fn sentences_are_packed_greedily_up_to_the_limit() {
        let text = "One two. Three four five. Six! Seven eight nine ten? Eleven.";
        assert_eq!(
            chunks(text, 30),
            vec![
                "One two. Three four five. ",
                "Six! Seven eight nine ten? ",
                "Eleven."
            ]
        );
    }

    #[test]
    fn chinese_splits_at_full_width_sentence_marks() {
        let text = "今天天气很好。我们去公园吧！你觉得怎么样？好；走吧。";
        assert_eq!(
            chunks(text, 8),
            vec![
                "今天天气很好。",
                "我们去公园吧！",
                "你觉得怎么样？",
                "好；走吧。"
            ]
        );
    }

    #[test]
    fn a_long_sentence_is_cut_at_clauses_then_words() {
        let text = "First clause here, second clause here, and a third one here. End.";
        assert_eq!(
            chunks(text, 20),
            vec![
                "First clause here, ",
                "second clause here, ",
                "and a third one ",
                "here. End."
            ]
        );
        let chinese = "春天来了，花儿开了，鸟儿在唱歌，孩子们在草地上奔跑。";
        assert_eq!(
            chunks(chinese, 10),
            vec![
                "春天来了，花儿开了，",
                "鸟儿在唱歌，",
                "孩子们在草地上奔跑。"
            ]
        );
    }

    #[test]
    fn numbers_abbreviations_and_quotes_do_not_end_sentences_early() {
        let text = "Pi is 3.14, about 1,000 times 0.00314. \"Really?!\" she said. Ok.";
        assert_eq!(
            chunks(text, 40),
            vec![
                "Pi is 3.14, about 1,000 times 0.00314. ",
                "\"Really?!\" she said. Ok."
            ]
        );
    }

    #[test]
    fn line_breaks_end_sentences_and_stay_with_the_text_before() {
        let text = "Title\n\nFirst paragraph is here\nSecond line";
        assert_eq!(
            chunks(text, 40),
            vec!["Title\n\nFirst paragraph is here\n", "Second line"]
        );
    }

    #[test]
    fn a_word_longer_than_the_limit_is_cut_at_characters() {
        let word = "Pneumonoultramicroscopicsilicovolcanoconiosis";
        let text = format!("A {word} case.");
        let got = chunks(&text, 10);
        assert_eq!(got.concat(), text);
        assert!(got.iter().all(|c| c.chars().count() <= 10), "{got:?}");
        assert_eq!(got[0], "A ");
    }

    #[test]
    fn emoji_sequences_stay_whole_when_they_fit() {
        // A family emoji is 5 scalar values joined by zero-width joiners.
        let family = "👨\u{200D}👩\u{200D}👧";
        let text = format!("abcd{family}{family}");
        let got = chunks(&text, 6);
        assert_eq!(got, vec!["abcd", family, family]);
    }

    #[test]
    fn counters_measure_as_providers_do() {
        let text = "hé 你好 😀";
        assert_eq!(Counter::Chars.count(text), 7);
        assert_eq!(Counter::Utf16.count(text), 8);
        assert_eq!(Counter::Utf8Bytes.count(text), 15);
        assert_eq!(Counter::Weighted { wide: 2, narrow: 1 }.count(text), 9);
        // Full-width punctuation counts as CJK, half-width as a letter.
        assert_eq!(
            Counter::Weighted { wide: 3, narrow: 1 }.count("你好，ok,"),
            12
        );
    }

    #[test]
    fn the_limit_is_honoured_in_the_providers_unit() {
        let text = "你好世界。".repeat(20);
        let weighted = split(&text, 20, Counter::Weighted { wide: 2, narrow: 1 }).unwrap();
        assert_eq!(weighted[0], "你好世界。你好世界。");
        let bytes = split(&text, 20, Counter::Utf8Bytes).unwrap();
        assert_eq!(bytes[0], "你好世界。");
    }

    #[test]
    fn a_limit_smaller_than_one_character_is_refused() {
        assert_eq!(
            split("hello", 3, Counter::Utf8Bytes),
            Err(LimitTooSmall {
                limit: 3,
                needed: 4
            })
        );
        assert!(split("hello", 0, Counter::Chars).is_err());
        assert!(split("你好", 1, Counter::Weighted { wide: 2, narrow: 1 }).is_err());
    }

    fn counter() -> impl Strategy<Value = Counter> {
        prop_oneof![
            Just(Counter::Chars),
            Just(Counter::Utf16),
            Just(Counter::Utf8Bytes),
            (1usize..5).prop_map(|wide| Counter::Weighted { wide, narrow: 1 }),
        ]
    }

    /// Text from pieces that exercise every rule: words in several scripts, emoji with joiners
    /// and modifiers, combining marks, punctuation of every level, whitespace runs.
    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-zA-Z]{1,12}",
            2 => "[你好世界中文测试春天来了]{1,8}",
            1 => "[ひらがなカタカナ한국어]{1,6}",
            1 => "(😀|👍🏽|👨\u{200D}👩\u{200D}👧|🇨🇳|e\u{0301}|क्षि|ﷺ)",
            3 => "( |  |\n|\n\n|\t)",
            3 => "(\\. |\\.|!|\\?|…|。|！|？|；|,|, |;|:|，|、|：|—|\"|”|」|\\))",
            1 => "[0-9]{1,4}(\\.[0-9]{1,3})?",
            1 => "\\PC{1,5}",
        ];
        prop::collection::vec(piece, 0..80).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn chunks_rejoin_to_the_input_and_stay_within_the_limit(
            text in text(),
            counter in counter(),
            extra in 0usize..60,
        ) {
            let limit = counter.max_char_cost() + extra;
            let got = split(&text, limit, counter).unwrap();
            prop_assert_eq!(got.concat(), text.clone());
            for chunk in &got {
                prop_assert!(!chunk.is_empty());
                prop_assert!(counter.count(chunk) <= limit, "{:?} over {}", chunk, limit);
            }
            if text.is_empty() {
                prop_assert!(got.is_empty());
            }
        }

        #[test]
        fn chunks_carry_text_unless_whitespace_runs_rival_the_limit(
            text in text(),
            counter in counter(),
            extra in 0usize..60,
        ) {
            let limit = counter.max_char_cost() + extra;
            let got = split(&text, limit, counter).unwrap();
            let longest_blank_run = text
                .split(|c: char| !c.is_whitespace())
                .map(|run| counter.count(run))
                .max()
                .unwrap_or(0);
            let longest_word = text
                .split(char::is_whitespace)
                .map(|word| counter.count(word))
                .max()
                .unwrap_or(0);
            // With words and blank runs each well under the limit, no chunk is blank.
            if 2 * (longest_blank_run + longest_word) <= limit && !text.trim().is_empty() {
                for chunk in &got {
                    prop_assert!(!chunk.trim().is_empty(), "blank chunk in {:?}", got);
                }
            }
        }

        #[test]
        fn sentences_that_fit_are_never_cut(
            sentences in prop::collection::vec("[a-z]{1,8}( [a-z]{1,8}){0,6}[.!?] ", 1..20),
            limit in 70usize..120,
        ) {
            let text = sentences.concat();
            let got = split(&text, limit, Counter::Chars).unwrap();
            for chunk in &got {
                prop_assert!(chunk.ends_with(['.', '!', '?', ' ']), "{:?}", chunk);
                prop_assert!(chunk.trim_end().ends_with(['.', '!', '?']), "cut mid-sentence: {:?}", chunk);
            }
            // Greedy: no two neighbours would have fitted together.
            for pair in got.windows(2) {
                prop_assert!(pair[0].len() + pair[1].find(['.', '!', '?']).unwrap() + 2 > limit);
            }
        }
    }
}
