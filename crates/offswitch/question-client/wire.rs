//! The question service's wire format as the question program reads and writes it:
//! one JSON object per line each way, handled without an allocator or the standard
//! library (the program is a static binary with no libc, so that each of the many calls
//! an episode makes costs little to start). Shared, as source, by the question program
//! and offswitch's tests, which check it against the service's own serde types.
//!
//! A request is `{"op":"next"}`, with `"ran":{...}` (the record's `KillPathRun`) after
//! running the kill path. A reply is an object of string members: `print` and `touch`,
//! or `run` and `unless_missing` (others, such as `error`, are ignored).

/// A reply's members, decoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reply<'a> {
    pub print: Option<&'a [u8]>,
    pub touch: Option<&'a [u8]>,
    pub run: Option<&'a [u8]>,
    pub unless_missing: Option<&'a [u8]>,
}

/// How running the kill path's script went (the record's `KillPathRun`; the service
/// writes the error's text from its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran<'a> {
    NotStarted { errno: i32 },
    NotTriggered { file: &'a [u8] },
    Exited { code: i32 },
    Signalled { signal: i32 },
}

/// The output did not fit its buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLong;

/// Bytes written into a fixed buffer.
pub struct Buf<'a> {
    bytes: &'a mut [u8],
    len: usize,
}

impl<'a> Buf<'a> {
    pub fn new(bytes: &'a mut [u8]) -> Self {
        Buf { bytes, len: 0 }
    }

    pub fn push(&mut self, more: &[u8]) -> Result<(), TooLong> {
        let end = self.len.checked_add(more.len()).ok_or(TooLong)?;
        self.bytes
            .get_mut(self.len..end)
            .ok_or(TooLong)?
            .copy_from_slice(more);
        self.len = end;
        Ok(())
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub fn int(&mut self, value: i32) -> Result<(), TooLong> {
        let mut digits = [0u8; 11];
        let mut at = digits.len();
        let mut rest = i64::from(value).unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if value < 0 {
            at -= 1;
            digits[at] = b'-';
        }
        self.push(&digits[at..])
    }

    /// A JSON string: quotes, backslashes and control characters escaped, other bytes
    /// as they are.
    fn string(&mut self, text: &[u8]) -> Result<(), TooLong> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.push(b"\"")?;
        for &byte in text {
            match byte {
                b'"' => self.push(b"\\\"")?,
                b'\\' => self.push(b"\\\\")?,
                b'\n' => self.push(b"\\n")?,
                0..0x20 => self.push(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 15)],
                ])?,
                _ => self.push(&[byte])?,
            }
        }
        self.push(b"\"")
    }
}

/// The request line (with its newline) for the next step, saying how the kill path ran
/// if this program just ran it.
pub fn request(ran: Option<Ran<'_>>, out: &mut Buf<'_>) -> Result<(), TooLong> {
    out.push(b"{\"op\":\"next\"")?;
    if let Some(ran) = ran {
        out.push(b",\"ran\":{\"result\":")?;
        match ran {
            Ran::NotStarted { errno } => {
                out.push(b"\"not_started\",\"errno\":")?;
                out.int(errno)?;
            }
            Ran::NotTriggered { file } => {
                out.push(b"\"not_triggered\",\"file\":")?;
                out.string(file)?;
            }
            Ran::Exited { code } => {
                out.push(b"\"exited\",\"code\":")?;
                out.int(code)?;
            }
            Ran::Signalled { signal } => {
                out.push(b"\"signalled\",\"signal\":")?;
                out.int(signal)?;
            }
        }
        out.push(b"}")?;
    }
    out.push(b"}\n")
}

/// Parses a reply line; its strings are decoded into `scratch`, which the reply borrows.
pub fn parse_reply<'s>(line: &[u8], scratch: &'s mut [u8]) -> Result<Reply<'s>, &'static str> {
    let mut parser = Parser {
        text: line,
        at: 0,
        out: scratch,
        written: 0,
    };
    let mut found: [Option<(usize, usize)>; 4] = [None; 4];
    parser.space();
    parser.expect(b'{')?;
    parser.space();
    if parser.peek() == Some(b'}') {
        parser.at += 1;
    } else {
        loop {
            parser.space();
            let mark = parser.written;
            let key = parser.string()?;
            let slot = match &parser.out[key.0..key.1] {
                b"print" => Some(0),
                b"touch" => Some(1),
                b"run" => Some(2),
                b"unless_missing" => Some(3),
                _ => None,
            };
            // The key's bytes are not kept.
            parser.written = mark;
            parser.space();
            parser.expect(b':')?;
            parser.space();
            let value = parser.string()?;
            match slot {
                Some(slot) => found[slot] = Some(value),
                None => parser.written = mark,
            }
            parser.space();
            match parser.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err("expected `,` or `}` in the reply"),
            }
        }
    }
    parser.space();
    if parser.at != line.len() {
        return Err("trailing characters after the reply");
    }
    let out: &'s [u8] = parser.out;
    let get = |slot: usize| found[slot].map(|(start, end)| &out[start..end]);
    Ok(Reply {
        print: get(0),
        touch: get(1),
        run: get(2),
        unless_missing: get(3),
    })
}

struct Parser<'l, 's> {
    text: &'l [u8],
    at: usize,
    out: &'s mut [u8],
    written: usize,
}

impl Parser<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), &'static str> {
        match self.next() {
            Some(b) if b == byte => Ok(()),
            _ => Err("the reply is not a JSON object of strings"),
        }
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<(), &'static str> {
        let end = self.written + bytes.len();
        self.out
            .get_mut(self.written..end)
            .ok_or("the reply is too long")?
            .copy_from_slice(bytes);
        self.written = end;
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, &'static str> {
        let mut value = 0;
        for _ in 0..4 {
            let digit = match self.next() {
                Some(d @ b'0'..=b'9') => d - b'0',
                Some(d @ b'a'..=b'f') => d - b'a' + 10,
                Some(d @ b'A'..=b'F') => d - b'A' + 10,
                _ => return Err("bad \\u escape in the reply"),
            };
            value = value * 16 + u32::from(digit);
        }
        Ok(value)
    }

    /// A JSON string, decoded into `out`: where its bytes are.
    fn string(&mut self) -> Result<(usize, usize), &'static str> {
        self.expect(b'"')?;
        let start = self.written;
        loop {
            match self.next().ok_or("unterminated string in the reply")? {
                b'"' => return Ok((start, self.written)),
                b'\\' => {
                    let simple = match self.next() {
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'/') => b'/',
                        Some(b'b') => 8,
                        Some(b'f') => 12,
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        Some(b'u') => {
                            let mut unit = self.hex4()?;
                            if (0xD800..0xDC00).contains(&unit) {
                                if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                                    return Err("lone surrogate in the reply");
                                }
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err("lone surrogate in the reply");
                                }
                                unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                            }
                            let c = char::from_u32(unit).ok_or("lone surrogate in the reply")?;
                            let mut utf8 = [0u8; 4];
                            self.emit(c.encode_utf8(&mut utf8).as_bytes())?;
                            continue;
                        }
                        _ => return Err("bad escape in the reply"),
                    };
                    self.emit(&[simple])?;
                }
                0..0x20 => return Err("control character in a string of the reply"),
                byte => self.emit(&[byte])?,
            }
        }
    }
}
