//! The one rule for text that will be spoken, wherever it comes from (the studio, the API,
//! podcast lines, pasted dialogues, a model's script): what is refused, how the rest is
//! normalised, and so exactly what providers are sent and users are billed for.
//!
//! 1. Control characters are refused, except line breaks and tabs: C0 (NUL included), DEL
//!    and C1 (U+0080–U+009F, NEL included). Engines read them differently (a NUL ends
//!    espeak-ng's input), so they would make the audio end early while the text is billed whole.
//! 2. Line breaks become `\n` (`\r\n` and a lone `\r` included).
//! 3. The text is put in Unicode NFC: `e` + U+0301 becomes `é`, one character, as every
//!    provider counts it.
//! 4. Whitespace around the text is dropped.
//! 5. Text with nothing to speak is refused as empty: only whitespace, format characters
//!    (zero-width space, joiners, word joiner, byte order mark, direction marks), combining
//!    marks or Hangul fillers.
//!
//! Emoji, right-to-left scripts and every other visible character pass unchanged. The
//! characters counted for limits, quotas and billing are those of the normalised text.

use crate::error::ErrorCode;
use std::borrow::Cow;
use std::fmt;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// Why a text cannot be spoken. `Display` gives a phrase that follows a field's name
/// ("must not be empty").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextProblem {
    /// A refused control character and its 1-based position among the input's characters.
    Control { character: char, position: usize },
    /// Nothing but whitespace.
    Empty,
    /// Only characters that are not seen or heard (zero-width, joiners, marks alone).
    Invisible,
}

impl fmt::Display for TextProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Control {
                character,
                position,
            } => write!(
                f,
                "contains the control character U+{:04X} at character {position}; \
                 only line breaks and tabs may appear in text to speak",
                u32::from(*character)
            ),
            Self::Empty => f.write_str("must not be empty"),
            Self::Invisible => f.write_str(
                "must not be empty: it holds only invisible characters such as zero-width spaces",
            ),
        }
    }
}

impl std::error::Error for TextProblem {}

impl TextProblem {
    /// A 400 `invalid_request` naming `field`, its message starting with `subject`
    /// ("The text must not be empty").
    pub fn for_field(self, field: &str, subject: &str) -> crate::error::AppError {
        crate::error::AppError::field(
            ErrorCode::InvalidRequest,
            field,
            format!("{subject} {self}"),
        )
    }
}

/// Applies the rule: the text as it will be sent to a provider, or why it cannot be spoken.
pub fn spoken(raw: &str) -> Result<String, TextProblem> {
    if let Some((i, character)) = raw.chars().enumerate().find(|&(_, c)| refused(c)) {
        return Err(TextProblem::Control {
            character,
            position: i + 1,
        });
    }
    let lines: Cow<'_, str> = if raw.contains('\r') {
        Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(raw)
    };
    // Most text is already NFC; the quick check settles that without allocating.
    let text = if is_nfc_quick(lines.chars()) == IsNormalized::Yes {
        lines.trim().to_string()
    } else {
        lines.nfc().collect::<String>().trim().to_string()
    };
    if text.is_empty() {
        return Err(TextProblem::Empty);
    }
    if !text.chars().any(speakable) {
        return Err(TextProblem::Invisible);
    }
    Ok(text)
}

/// Control characters (general category Cc) other than the line feed and the tab; a carriage
/// return is a line break and is turned into one.
fn refused(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\t' | '\r')
}

/// Whether a character can be seen, and so read out: not whitespace, not a format character
/// or another invisible code point, not a mark that only modifies the character before it.
fn speakable(c: char) -> bool {
    if c.is_whitespace() || matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}') {
        // Hangul fillers are letters by category but show nothing.
        return false;
    }
    match c.general_category_group() {
        GeneralCategoryGroup::Mark => false,
        GeneralCategoryGroup::Other => c.general_category() != GeneralCategory::Format,
        _ => true,
    }
}

/// A title someone chose (an audio's, a show's, an episode's): trimmed, 1 to 200 characters,
/// no control characters (titles are not spoken, but they reach file names, tags and feeds).
pub fn title(title: &str) -> crate::error::Result<String> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(crate::error::AppError::field(
            ErrorCode::InvalidRequest,
            "title",
            "A title has 1 to 200 characters",
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(crate::error::AppError::field(
            ErrorCode::InvalidRequest,
            "title",
            "A title must not contain control characters",
        ));
    }
    Ok(title.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn control_at(raw: &str) -> Option<(char, usize)> {
        match spoken(raw) {
            Err(TextProblem::Control {
                character,
                position,
            }) => Some((character, position)),
            _ => None,
        }
    }

    #[test]
    fn control_characters_other_than_line_breaks_and_tabs_are_refused_with_their_place() {
        assert_eq!(control_at("Hello\0world"), Some(('\0', 6)));
        assert_eq!(control_at("ding\x07"), Some(('\x07', 5)));
        assert_eq!(control_at("\x1bclear"), Some(('\x1b', 1)));
        assert_eq!(control_at("del\x7f"), Some(('\x7f', 4)));
        assert_eq!(control_at("next\u{85}line"), Some(('\u{85}', 5)));
        assert_eq!(control_at("c1 \u{9f}"), Some(('\u{9f}', 4)));
        // Positions count characters, not bytes.
        assert_eq!(control_at("你好\0"), Some(('\0', 3)));
        assert_eq!(
            spoken("one\ttwo\nthree").as_deref(),
            Ok("one\ttwo\nthree"),
            "tabs and line feeds stay"
        );
    }

    #[test]
    fn carriage_returns_become_line_feeds() {
        assert_eq!(spoken("a\r\nb\rc\n").as_deref(), Ok("a\nb\nc"));
    }

    #[test]
    fn text_is_put_in_nfc_and_trimmed() {
        assert_eq!(spoken("  Caf\u{65}\u{301} \n").as_deref(), Ok("Café"));
        assert_eq!(spoken("e\u{301}").unwrap().chars().count(), 1);
        // Hangul jamo compose into one syllable.
        assert_eq!(spoken("\u{1100}\u{1161}").as_deref(), Ok("가"));
    }

    #[test]
    fn text_with_nothing_to_speak_is_refused() {
        assert_eq!(spoken(""), Err(TextProblem::Empty));
        assert_eq!(spoken(" \n\t\u{3000}\u{a0}\r\n"), Err(TextProblem::Empty));
        for invisible in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}",
            " \u{200E}\u{200F}\u{202E} ",
            "\u{00AD}\u{061C}\u{2066}\u{2069}",
            "\u{FE0F}\u{301}",
            "\u{3164}\u{115F}",
        ] {
            assert_eq!(
                spoken(invisible),
                Err(TextProblem::Invisible),
                "{invisible:?}"
            );
        }
    }

    #[test]
    fn emoji_and_right_to_left_scripts_pass_unchanged() {
        for text in [
            "Hello 👋 مرحبا שלום",
            "👨\u{200D}👩\u{200D}👧 👍🏽 🇨🇳",
            "你好，世界。",
            "क्षि",
            "۱۲۳",
            "?!",
        ] {
            assert_eq!(spoken(text).as_deref(), Ok(text));
        }
        assert_eq!(
            spoken("\u{200B}hi\u{200B}").as_deref(),
            Ok("\u{200B}hi\u{200B}"),
            "invisible characters inside a text are left alone"
        );
    }

    #[test]
    fn messages_name_the_character() {
        let p = spoken("a\0").unwrap_err();
        assert!(
            p.to_string()
                .starts_with("contains the control character U+0000 at character 2")
        );
        assert_eq!(TextProblem::Empty.to_string(), "must not be empty");
    }

    proptest! {
        #[test]
        fn accepted_text_is_normalised_free_of_controls_and_stable(raw in "(?s)\\PC{0,40}|.{0,40}") {
            if let Ok(text) = spoken(&raw) {
                prop_assert!(unicode_normalization::is_nfc(&text));
                prop_assert!(!text.chars().any(refused));
                prop_assert!(!text.contains('\r'));
                prop_assert_eq!(text.trim(), text.as_str());
                prop_assert_eq!(spoken(&text), Ok(text.clone()), "applying the rule twice changes nothing");
            }
        }
    }

    #[test]
    fn chosen_titles_are_trimmed_and_refuse_control_characters_and_excess_length() {
        assert_eq!(title("  My take  ").unwrap(), "My take");
        assert_eq!(title("שלום 👋").unwrap(), "שלום 👋");
        for bad in ["", "   ", "a\u{0}b", "tab\there", "c1\u{85}x"] {
            let err = title(bad).unwrap_err();
            assert!(
                matches!(err, crate::error::AppError::BadRequest { .. }),
                "{bad:?}: {err:?}"
            );
        }
        assert!(title(&"x".repeat(200)).is_ok());
        assert!(title(&"x".repeat(201)).is_err());
    }
}
