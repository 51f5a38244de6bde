//! Character classes the pre-tokenizer rules test (\p{L}, \p{N}, \p{P}, \s) and GPT-2's
//! byte <-> character map. Categories come from the Unicode general category; "whitespace" is
//! Unicode's White_Space property, the set llama.cpp's tokenizer uses for `\s`.

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

/// What the pre-tokenizer rules ask of one character: a single category bit, plus `WS` for
/// whitespace. Every character has exactly one category, so flags are never zero; rules use a
/// zero `Flags` for "past the end of the text".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Flags(u8);

impl Flags {
    pub const END: Flags = Flags(0);
    const LETTER: u8 = 1;
    const NUMBER: u8 = 2;
    const PUNCT: u8 = 4;
    const SYMBOL: u8 = 8;
    const MARK: u8 = 16;
    /// Separators, controls, format, private use, unassigned.
    const OTHER: u8 = 32;
    const WS: u8 = 64;

    #[inline]
    pub fn is_letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }
    #[inline]
    pub fn is_number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }
    #[inline]
    pub fn is_punct(self) -> bool {
        self.0 & Self::PUNCT != 0
    }
    #[inline]
    pub fn is_ws(self) -> bool {
        self.0 & Self::WS != 0
    }
    /// `[^\s\p{L}\p{N}]`: a real character that is neither whitespace, letter nor number.
    #[inline]
    pub fn is_other(self) -> bool {
        self.0 != 0 && self.0 & (Self::WS | Self::LETTER | Self::NUMBER) == 0
    }
}

/// The flags of every ASCII character, built at compile time so the common case is one load.
static ASCII_FLAGS: [Flags; 128] = {
    let mut t = [Flags(Flags::OTHER); 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = Flags(match c {
            b'A'..=b'Z' | b'a'..=b'z' => Flags::LETTER,
            b'0'..=b'9' => Flags::NUMBER,
            // Tab, newline, vertical tab, form feed, carriage return, space.
            b'\t'..=b'\r' | b' ' => Flags::OTHER | Flags::WS,
            b'$' | b'+' | b'<' | b'=' | b'>' | b'^' | b'`' | b'|' | b'~' => Flags::SYMBOL,
            b'!'..=b'/' | b':'..=b'@' | b'['..=b'_' | b'{'..=b'}' => Flags::PUNCT,
            _ => Flags::OTHER,
        });
        b += 1;
    }
    t
};

#[inline]
pub(crate) fn flags(c: char) -> Flags {
    if c.is_ascii() {
        return ASCII_FLAGS[c as usize];
    }
    let cat = match get_general_category(c) {
        Gc::UppercaseLetter
        | Gc::LowercaseLetter
        | Gc::TitlecaseLetter
        | Gc::ModifierLetter
        | Gc::OtherLetter => Flags::LETTER,
        Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber => Flags::NUMBER,
        Gc::ConnectorPunctuation
        | Gc::DashPunctuation
        | Gc::OpenPunctuation
        | Gc::ClosePunctuation
        | Gc::InitialPunctuation
        | Gc::FinalPunctuation
        | Gc::OtherPunctuation => Flags::PUNCT,
        Gc::MathSymbol | Gc::CurrencySymbol | Gc::ModifierSymbol | Gc::OtherSymbol => Flags::SYMBOL,
        Gc::NonspacingMark | Gc::SpacingMark | Gc::EnclosingMark => Flags::MARK,
        _ => Flags::OTHER,
    };
    let ws = if is_non_ascii_ws(c as u32) {
        Flags::WS
    } else {
        0
    };
    Flags(cat | ws)
}

/// Unicode White_Space outside ASCII.
#[inline]
pub(crate) fn is_non_ascii_ws(cp: u32) -> bool {
    matches!(
        cp,
        0x85 | 0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000
    )
}

/// GPT-2's byte-level alphabet: each byte stands for one printable character, so that token
/// texts are readable strings. Printable Latin-1 bytes stand for themselves; the other 68 bytes
/// (controls, space, DEL, NBSP, soft hyphen) take the characters from U+0100 up, in byte order.
pub(crate) fn byte_to_char(b: u8) -> char {
    BYTE_TO_CHAR[b as usize]
}

/// The byte a GPT-2 alphabet character stands for, if it is one.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    CHAR_TO_BYTE.get(c as usize).copied().flatten()
}

const fn stands_for_itself(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

static BYTE_TO_CHAR: [char; 256] = {
    let mut t = ['\0'; 256];
    let mut next = 0x100u32;
    let mut b = 0;
    while b < 256 {
        if stands_for_itself(b as u8) {
            t[b] = b as u8 as char;
        } else {
            t[b] = match char::from_u32(next) {
                Some(c) => c,
                None => panic!("U+0100..U+0143 are all characters"),
            };
            next += 1;
        }
        b += 1;
    }
    t
};

/// Indexed by code point; the alphabet ends at U+0143.
static CHAR_TO_BYTE: [Option<u8>; 0x144] = {
    let mut t = [None; 0x144];
    let mut b = 0;
    while b < 256 {
        t[BYTE_TO_CHAR[b] as usize] = Some(b as u8);
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_is_a_bijection() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b), "byte {b}");
        }
        // Known points of the alphabet: space is 'Ġ', newline 'Ċ', tab 'ĉ'.
        for (b, c) in [
            (b' ', 'Ġ'),
            (b'\n', 'Ċ'),
            (b'\t', 'ĉ'),
            (b'a', 'a'),
            (0xAD, 'Ń'),
        ] {
            assert_eq!(byte_to_char(b), c);
        }
        assert_eq!(char_to_byte('€'), None);
    }

    #[test]
    fn classes() {
        let check = |c: char, letter: bool, number: bool, punct: bool, ws: bool| {
            let f = flags(c);
            assert_eq!(
                (f.is_letter(), f.is_number(), f.is_punct(), f.is_ws()),
                (letter, number, punct, ws),
                "{c:?}"
            );
        };
        check('a', true, false, false, false);
        check('é', true, false, false, false);
        check('中', true, false, false, false);
        check('7', false, true, false, false);
        check('½', false, true, false, false);
        check('٣', false, true, false, false);
        check('!', false, false, true, false);
        check('¿', false, false, true, false);
        check('$', false, false, false, false);
        check(' ', false, false, false, true);
        check('\u{3000}', false, false, false, true);
        check('\u{85}', false, false, false, true);
        check('\u{200B}', false, false, false, false);
        assert!(flags('$').is_other() && flags('\u{301}').is_other() && !flags(' ').is_other());
        assert!(!Flags::END.is_other());
    }
}
