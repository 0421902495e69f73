//! English text analysis in the manner of Lucene's `EnglishAnalyzer` as Anserini configures it
//! (`DefaultEnglishAnalyzer`, stemmer `porter`): a UAX #29-style word tokeniser, possessive
//! `'s` removal, lowercasing, Lucene's 33 English stop words, and English stemming.
//!
//! Differences from Lucene, by design or for want of Unicode tables in `std`:
//! - The stemmer is Snowball English (Porter2, from `rust-stemmers`), where Lucene's
//!   `PorterStemFilter` is the original Porter algorithm. Most stems agree.
//! - Word boundaries follow the UAX #29 rules that matter for running text: letters and digits
//!   form words; `'`, `’`, `.`, `:` and `·` join letters on both sides (`don't`, `u.s`);
//!   `.`, `,`, `;` and `'` join digits on both sides (`3.14`, `1,000`); `_` joins anything;
//!   combining marks and zero-width joiners stay inside a word; each Han ideograph or Hiragana
//!   character is a word of its own. Letters and digits are `char::is_alphanumeric`, which is
//!   slightly wider than UAX #29 (it keeps, for example, superscript digits).
//! - Lucene splits tokens longer than 255 characters; this analyzer keeps them whole.

use rust_stemmers::{Algorithm, Stemmer};

/// Lucene's `EnglishAnalyzer.ENGLISH_STOP_WORDS_SET` (33 words), sorted for binary search.
pub const ENGLISH_STOP_WORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// The word-break class of one character (a subset of UAX #29's `Word_Break` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    /// A character that is a word by itself (Han ideographs, Hiragana).
    Single,
    /// Joins letters on both sides (`MidLetter`).
    MidLetter,
    /// Joins digits on both sides (`MidNum`).
    MidNum,
    /// Joins letters or digits on both sides (`MidNumLet`, `Single_Quote`).
    MidNumLet,
    /// Joins anything (`ExtendNumLet`).
    Connector,
    /// Stays inside the word it follows (`Extend`, `Format`, `ZWJ`).
    Extend,
    Other,
}

fn class(c: char) -> Class {
    match c {
        '\'' | '.' | '\u{2018}' | '\u{2019}' | '\u{2024}' | '\u{FE52}' | '\u{FF07}'
        | '\u{FF0E}' => Class::MidNumLet,
        ':' | '\u{00B7}' | '\u{0387}' | '\u{05F4}' | '\u{2027}' | '\u{FE13}' | '\u{FE55}'
        | '\u{FF1A}' => Class::MidLetter,
        ',' | ';' | '\u{037E}' | '\u{0589}' | '\u{060C}' | '\u{060D}' | '\u{066C}' | '\u{07F8}'
        | '\u{2044}' | '\u{FE10}' | '\u{FE14}' | '\u{FE50}' | '\u{FE54}' | '\u{FF0C}'
        | '\u{FF1B}' => Class::MidNum,
        '_'
        | '\u{203F}'
        | '\u{2040}'
        | '\u{2054}'
        | '\u{FE33}'
        | '\u{FE34}'
        | '\u{FE4D}'..='\u{FE4F}'
        | '\u{FF3F}' => Class::Connector,
        '\u{00AD}'
        | '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{200C}'
        | '\u{200D}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FE20}'..='\u{FE2F}' => Class::Extend,
        '\u{3040}'..='\u{309F}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{3134F}' => Class::Single,
        c if c.is_numeric() => Class::Digit,
        c if c.is_alphabetic() => Class::Letter,
        _ => Class::Other,
    }
}

/// Calls `f` with each word of `text` (a slice of `text`), UAX #29-style as described in the
/// module docs.
fn for_each_word<'t>(text: &'t str, mut f: impl FnMut(&'t str)) {
    // A run of connectors alone (`__`) is no word.
    let mut f = |w: &'t str| {
        if w.chars().any(char::is_alphanumeric) {
            f(w)
        }
    };
    // Extend characters are folded into the word they follow (UAX #29 rule WB4) by skipping
    // them when looking at neighbours.
    let chars = text.char_indices().map(|(i, c)| (i, c, class(c)));
    // Start of the current word, and the class of its last non-Extend character.
    let mut word: Option<(usize, Class)> = None;
    // A pending middle character: (its offset, its class), seen right after a word character.
    let mut mid: Option<(usize, Class)> = None;
    for (i, c, cls) in chars {
        match cls {
            Class::Extend => continue,
            Class::Letter | Class::Digit => match (word, mid) {
                (Some((start, last)), Some((_, m))) => {
                    let joins = match m {
                        Class::MidLetter => last == Class::Letter && cls == Class::Letter,
                        Class::MidNum => last == Class::Digit && cls == Class::Digit,
                        _ => last == cls,
                    };
                    if joins {
                        word = Some((start, cls));
                    } else {
                        let (mid_at, _) = mid.expect("pending middle character");
                        f(&text[start..mid_at]);
                        word = Some((i, cls));
                    }
                    mid = None;
                }
                (Some((start, _)), None) => word = Some((start, cls)),
                (None, _) => word = Some((i, cls)),
            },
            Class::Connector => {
                // `_` continues a word (and may start one); a pending middle character ends it.
                if let (Some((start, _)), Some((mid_at, _))) = (word, mid) {
                    f(&text[start..mid_at]);
                    word = None;
                }
                mid = None;
                word = Some((word.map_or(i, |(start, _)| start), Class::Connector));
            }
            Class::MidLetter | Class::MidNum | Class::MidNumLet => match (word, mid) {
                (Some((_, last)), None) if last == Class::Letter || last == Class::Digit => {
                    mid = Some((i, cls));
                }
                (Some((start, _)), Some((mid_at, _))) => {
                    f(&text[start..mid_at]);
                    word = None;
                    mid = None;
                }
                (Some((start, _)), None) => {
                    f(&text[start..i]);
                    word = None;
                }
                (None, _) => {}
            },
            Class::Single | Class::Other => {
                if let Some((start, _)) = word {
                    f(&text[start..mid.map_or(i, |(mid_at, _)| mid_at)]);
                }
                word = None;
                mid = None;
                if cls == Class::Single {
                    f(&text[i..i + c.len_utf8()]);
                }
            }
        }
    }
    if let Some((start, _)) = word {
        f(&text[start..mid.map_or(text.len(), |(mid_at, _)| mid_at)]);
    }
}

/// The English analyzer. Cheap to share between threads (`Send + Sync`).
pub struct Analyzer {
    stemmer: Stemmer,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::english()
    }
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Analyzer(english)")
    }
}

impl Analyzer {
    /// Tokenise, drop possessives, lowercase, drop stop words, stem (Snowball English).
    pub fn english() -> Self {
        Analyzer {
            stemmer: Stemmer::create(Algorithm::English),
        }
    }

    /// Calls `f` with each index term of `text`, in order. `f` gets a borrowed term, so
    /// callers that count terms need not allocate per token.
    pub fn for_each_term(&self, text: &str, mut f: impl FnMut(&str)) {
        let mut lower = String::new();
        for_each_word(text, |word| {
            let word = strip_possessive(word);
            lower.clear();
            lower.extend(word.chars().flat_map(char::to_lowercase));
            if ENGLISH_STOP_WORDS.binary_search(&lower.as_str()).is_err() {
                f(&self.stemmer.stem(&lower));
            }
        });
    }

    /// The index terms of `text`, in order (repeats kept).
    pub fn analyze(&self, text: &str) -> Vec<String> {
        let mut terms = Vec::new();
        self.for_each_term(text, |t| terms.push(t.to_owned()));
        terms
    }
}

/// Lucene's `EnglishPossessiveFilter`: drops a trailing `'s` (any of three apostrophes, `s` in
/// either case).
fn strip_possessive(word: &str) -> &str {
    let mut rev = word.char_indices().rev();
    match (rev.next(), rev.next()) {
        (Some((_, 's' | 'S')), Some((at, '\'' | '\u{2019}' | '\u{FF07}'))) => &word[..at],
        _ => word,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for_each_word(text, |w| out.push(w));
        out
    }

    #[test]
    fn stop_words_are_sorted_and_unique() {
        assert!(ENGLISH_STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn words_follow_uax29_joining_rules() {
        assert_eq!(
            words("Don't stop: the U.S. spent $1,000.50 (3.14%) on covid-19_x!"),
            [
                "Don't", "stop", "the", "U.S", "spent", "1,000.50", "3.14", "on", "covid", "19_x"
            ]
        );
        // Middle characters only join like with like, and never at a word's edge.
        assert_eq!(
            words("a,b 1:2 a.1 'quoted' end. x.."),
            ["a", "b", "1", "2", "a", "1", "quoted", "end", "x"]
        );
        assert_eq!(words("... __ _a"), ["_a"]);
        // Combining marks stay inside the word; ideographs are words of their own.
        assert_eq!(
            words("cafe\u{301} 東京abc"),
            ["cafe\u{301}", "東", "京", "abc"]
        );
        // Non-Latin scripts and digits mixed with letters.
        assert_eq!(
            words("Ωmega über—straße IL-6R h2o"),
            ["Ωmega", "über", "straße", "IL", "6R", "h2o"]
        );
    }

    #[test]
    fn possessives_are_removed() {
        assert_eq!(strip_possessive("John's"), "John");
        assert_eq!(strip_possessive("JOHN\u{2019}S"), "JOHN");
        assert_eq!(strip_possessive("its"), "its");
        assert_eq!(strip_possessive("'s"), "");
        assert_eq!(strip_possessive("s"), "s");
    }

    #[test]
    fn analyzer_lowercases_stops_and_stems() {
        let a = Analyzer::english();
        assert_eq!(
            a.analyze(
                "The Patient's cells were NOT responding to the treatments, and it is running."
            ),
            ["patient", "cell", "were", "respond", "treatment", "run"]
        );
        assert_eq!(
            a.analyze("Connected connections CONNECTING"),
            ["connect", "connect", "connect"]
        );
        assert_eq!(
            a.analyze("IL-6 levels in 2,000 mice"),
            ["il", "6", "level", "2,000", "mice"]
        );
        assert!(a.analyze("the and of to a").is_empty());
        assert!(a.analyze("").is_empty());
    }
}
