//! A small corpus of symbol sequences for the discrete specs (BFN, D3PM), and its text form.
//!
//! Symbols: 'a'..='z' are 0..=25 and the space is 26 (27 classes, text8's alphabet).
//! Sequence `i` draws at step `i` of the words stream: starting from nothing, it draws a word
//! uniformly from [`WORDS`] and appends it (after one space unless it is the first) while the
//! result still fits in `len` symbols; the first word that does not fit ends the sequence,
//! which is then padded with spaces to `len`.
//! So every sequence starts with a word, words are separated by single spaces, no word is cut,
//! and the tail is spaces.

use super::{stream, Draws};

/// The number of symbols.
pub const CLASSES: usize = 27;
/// The symbol of the space.
pub const SPACE: u32 = 26;
/// The default sequence length.
pub const LEN: usize = 16;

/// The vocabulary: 50 common short English words (2 to 5 letters).
pub const WORDS: [&str; 50] = [
    "the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are",
    "as", "with", "his", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by",
    "word", "but", "not", "what", "all", "were", "we", "when", "your", "can", "said", "there",
    "use", "an", "each", "which", "she", "do", "how", "their", "if", "will", "up",
];

/// Sequence `index` of the corpus, `len` symbols long.
pub fn sequence(seed: u64, index: usize, len: usize) -> Vec<u32> {
    let mut draws = Draws::new(seed, stream::WORDS, index);
    let mut text = String::new();
    loop {
        let word = WORDS[draws.below(WORDS.len())];
        let extra = if text.is_empty() { 0 } else { 1 };
        if text.len() + extra + word.len() > len {
            break;
        }
        if extra == 1 {
            text.push(' ');
        }
        text.push_str(word);
    }
    let mut seq = encode(&text).expect("the vocabulary is lowercase");
    seq.resize(len, SPACE);
    seq
}

/// The symbols of a line of text: 'a'..='z' and the space; anything else is an error naming
/// the character and its column (from 1).
pub fn encode(line: &str) -> Result<Vec<u32>, String> {
    line.chars()
        .enumerate()
        .map(|(col, ch)| match ch {
            'a'..='z' => Ok(ch as u32 - 'a' as u32),
            ' ' => Ok(SPACE),
            _ => Err(format!(
                "column {}: {ch:?} is not a lowercase letter or a space",
                col + 1
            )),
        })
        .collect()
}

/// The text of a sequence; a symbol above 26 prints as '?'.
pub fn decode(seq: &[u32]) -> String {
    seq.iter()
        .map(|&s| match s {
            0..=25 => char::from(b'a' + s as u8),
            SPACE => ' ',
            _ => '?',
        })
        .collect()
}

/// Sequences as text, one per line, each line ending in a newline.
pub fn to_lines(seqs: &[Vec<u32>]) -> String {
    let mut out = String::new();
    for seq in seqs {
        out.push_str(&decode(seq));
        out.push('\n');
    }
    out
}

/// Sequences from text, one per line (`\n` or `\r\n`); empty lines are skipped, spaces kept.
/// An error names the line (from 1) and the column.
pub fn from_lines(text: &str) -> Result<Vec<Vec<u32>>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| encode(line).map_err(|e| format!("line {}, {e}", i + 1)))
        .collect()
}
