//! A cursor over JSON text, byte by byte, for the readers that skip serde on the predict path:
//! [`crate::predict::PredictRequest::split`] finds a body's instances with it, and the ONNX
//! runtime reads instances into tensors with it. Each reads one form of JSON it knows and gives
//! up (`None`) on anything else, so serde still reads, and words the errors of, every other text.
//!
//! Only JSON's own white space is skipped, and strings are read only without escapes or control
//! characters: what serde refuses, a cursor never accepts. Its methods are small and marked
//! `#[inline]` because their callers are other crates' hot loops.

/// A position in a JSON text.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    text: &'a str,
    /// The byte offset of the next byte to read.
    pub at: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`.
    #[inline]
    pub fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    /// The whole text.
    #[inline]
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The whole text's bytes.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The byte at the cursor, white space included.
    #[inline]
    pub fn byte(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    /// Whether the cursor is past the last byte.
    #[inline]
    pub fn at_end(&self) -> bool {
        self.at >= self.text.len()
    }

    /// Steps over white space.
    #[inline]
    pub fn skip_space(&mut self) {
        while self.byte().is_some_and(is_space) {
            self.at += 1;
        }
    }

    /// The next byte after white space.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.byte()
    }

    /// The next byte after white space, stepped over.
    #[inline]
    pub fn next_byte(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    /// Steps over white space and `byte`; `None` when another byte is next.
    #[inline]
    pub fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next_byte()? == byte).then_some(())
    }

    /// Whether the next byte (after white space) is `byte`, stepping over it if so.
    #[inline]
    pub fn eat(&mut self, byte: u8) -> Option<bool> {
        let found = self.peek()? == byte;
        if found {
            self.at += 1;
        }
        Some(found)
    }

    /// After a list's or object's element: `true` at a comma (another follows), `false` at
    /// `close`.
    #[inline]
    pub fn more(&mut self, close: u8) -> Option<bool> {
        match self.next_byte()? {
            b',' => Some(true),
            byte if byte == close => Some(false),
            _ => None,
        }
    }

    /// A string's content, when it has no escapes and no control characters (`None` leaves
    /// the escapes to serde, and control characters are not JSON).
    #[inline]
    pub fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let end = start
            + self.bytes()[start..]
                .iter()
                .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
        // The byte found must be the closing quote itself (not white space before one).
        (self.bytes()[end] == b'"').then_some(())?;
        self.at = end + 1;
        self.text.get(start..end)
    }

    /// Steps over one value by its brackets and quotes alone, to the comma, bracket or brace
    /// after it (white space before that included), without reading the value: finding where
    /// values end, not whether they are JSON, which their reader says. `None` at the end of the
    /// text.
    #[inline]
    pub fn skip_value(&mut self) -> Option<()> {
        let bytes = self.bytes();
        let mut depth = 0usize;
        loop {
            if depth > 0 {
                self.at = structural(bytes, self.at)?;
            }
            match *bytes.get(self.at)? {
                b'"' => self.skip_string()?,
                b'[' | b'{' => {
                    depth += 1;
                    self.at += 1;
                }
                b']' | b'}' if depth > 0 => {
                    depth -= 1;
                    self.at += 1;
                }
                b',' | b']' | b'}' => return Some(()),
                _ => self.at += 1,
            }
        }
    }

    /// Steps over a string, escapes and all.
    fn skip_string(&mut self) -> Option<()> {
        let bytes = self.bytes();
        self.at += 1;
        loop {
            self.at += memchr::memchr2(b'"', b'\\', bytes.get(self.at..)?)?;
            match bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                _ => self.at += 2,
            }
        }
    }

    /// Steps over `word` (`true`, `false`, `null`).
    #[inline]
    pub fn literal(&mut self, word: &str) -> Option<()> {
        let found = self.bytes().get(self.at..)?.starts_with(word.as_bytes());
        found.then(|| self.at += word.len())
    }
}

/// JSON's white space (not form feeds, which `u8::is_ascii_whitespace` also takes).
#[inline]
pub fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// The position of the next quote, bracket or brace at or after `from`, eight bytes at a time
/// (most of an instance's bytes are digits, commas and spaces).
fn structural(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // A word's bytes equal to `byte` get their high bit set; the lowest such bit is exact.
    let equal = |word: u64, byte: u8| {
        let diff = word ^ (ONES * u64::from(byte));
        diff.wrapping_sub(ONES) & !diff & (ONES * 0x80)
    };
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        // Setting bit 5 folds `[` into `{` and `]` into `}`.
        let folded = word | (ONES * 0x20);
        let found = equal(word, b'"') | equal(folded, b'{') | equal(folded, b'}');
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = bytes.get(at..)?;
    rest.iter()
        .position(|byte| matches!(byte, b'"' | b'[' | b']' | b'{' | b'}'))
        .map(|offset| at + offset)
}
