//! Message framing of `sipc listen`/`connect` on stdin and stdout: how a
//! byte stream is cut into messages ([`FrameReader`]) and how messages are
//! written back as one ([`write_frame`]).
//!
//! Writing what was read gives back the same messages when read again
//! (and, for `len32` and `raw:N`, the same bytes): the `cli_frames` fuzz
//! target checks exactly that.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};

/// How messages are cut out of stdin and written to stdout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Frame {
    /// One message per line; the newline is not part of the message.
    #[default]
    Lines,
    /// A 4-byte little-endian length, then that many bytes.
    Len32,
    /// Input cut into messages of this many bytes (the last may be
    /// shorter); output unframed.
    Raw(usize),
}

impl Frame {
    /// `lines`, `len32` or `raw:N` (N > 0); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lines" => Some(Frame::Lines),
            "len32" => Some(Frame::Len32),
            _ => match s.strip_prefix("raw:")?.parse::<usize>().ok()? {
                0 => None,
                n => Some(Frame::Raw(n)),
            },
        }
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Lines => f.write_str("lines"),
            Frame::Len32 => f.write_str("len32"),
            Frame::Raw(n) => write!(f, "raw:{n}"),
        }
    }
}

/// Why no (further) message could be cut out of the input.
#[derive(Debug)]
pub enum FrameError {
    /// Reading the input failed.
    Io(io::Error),
    /// A `len32` frame or a `raw:N` chunk is larger than a message can be.
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The channel's largest message.
        max: usize,
    },
    /// A line is longer than a message can be (only `max` bytes were read).
    LineTooLong {
        /// The channel's largest message.
        max: usize,
    },
    /// The input ended inside a `len32` frame.
    Truncated {
        /// Bytes the frame (length prefix included) should have had.
        expected: usize,
        /// Bytes there were.
        got: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "reading stdin: {e}"),
            FrameError::TooLarge { len, max } => write!(
                f,
                "a {len}-byte frame is larger than the channel's largest message ({max} bytes)"
            ),
            FrameError::LineTooLong { max } => write!(
                f,
                "a line is longer than the channel's largest message ({max} bytes); \
                 use --frame raw:N or len32 for binary input"
            ),
            FrameError::Truncated { expected, got } => write!(
                f,
                "truncated len32 frame: the input ended after {got} of its {expected} bytes"
            ),
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Cuts messages of at most `max` bytes out of a byte stream. Memory use
/// is bounded by `max` and the buffer, whatever the input.
pub struct FrameReader<R> {
    input: BufReader<R>,
    frame: Frame,
    max: usize,
}

impl<R: Read> FrameReader<R> {
    /// A reader with a `capacity`-byte buffer; a `raw:N` chunk larger than
    /// `max` is refused at once.
    pub fn with_capacity(
        capacity: usize,
        input: R,
        frame: Frame,
        max: usize,
    ) -> Result<Self, FrameError> {
        if let Frame::Raw(n) = frame {
            if n > max {
                return Err(FrameError::TooLarge { len: n, max });
            }
        }
        Ok(Self {
            input: BufReader::with_capacity(capacity.max(1), input),
            frame,
            max,
        })
    }

    /// Reads the next message into `buf` (cleared first); `Ok(false)` at
    /// the end of the input.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
        buf.clear();
        match self.frame {
            Frame::Lines => self.next_line(buf),
            Frame::Len32 => self.next_len32(buf),
            Frame::Raw(n) => {
                let got = self.fill(buf, n)?;
                Ok(got > 0)
            }
        }
    }

    /// Whether everything read so far has been returned: the moment to
    /// publish what was queued (batches under load, low latency when the
    /// input is interactive).
    pub fn is_drained(&self) -> bool {
        self.input.buffer().is_empty()
    }

    fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
        let mut any = false;
        loop {
            let avail = match self.input.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if avail.is_empty() {
                // End of input: a last line without its newline still counts.
                return Ok(any);
            }
            any = true;
            let (part, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (&avail[..i], Some(i + 1)),
                None => (avail, None),
            };
            if buf.len() + part.len() > self.max {
                return Err(FrameError::LineTooLong { max: self.max });
            }
            buf.extend_from_slice(part);
            match done {
                Some(used) => {
                    self.input.consume(used);
                    return Ok(true);
                }
                None => {
                    let used = part.len();
                    self.input.consume(used);
                }
            }
        }
    }

    fn next_len32(&mut self, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
        let mut prefix = Vec::with_capacity(4);
        match self.fill(&mut prefix, 4)? {
            0 => return Ok(false),
            4 => {}
            got => return Err(FrameError::Truncated { expected: 4, got }),
        }
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        let got = self.fill(buf, len)?;
        if got < len {
            return Err(FrameError::Truncated {
                expected: 4 + len,
                got: 4 + got,
            });
        }
        Ok(true)
    }

    /// Appends up to `n` bytes to `buf`, fewer only at the end of the
    /// input; returns how many.
    fn fill(&mut self, buf: &mut Vec<u8>, n: usize) -> Result<usize, FrameError> {
        let start = buf.len();
        buf.resize(start + n, 0);
        let mut got = 0;
        while got < n {
            match self.input.read(&mut buf[start + got..]) {
                Ok(0) => break,
                Ok(r) => got += r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    buf.truncate(start + got);
                    return Err(e.into());
                }
            }
        }
        buf.truncate(start + got);
        Ok(got)
    }
}

/// Writes one message framed as `frame` (`raw:N`: the bare payload).
pub fn write_frame(out: &mut impl Write, payload: &[u8], frame: Frame) -> io::Result<()> {
    match frame {
        Frame::Lines => {
            out.write_all(payload)?;
            out.write_all(b"\n")
        }
        Frame::Len32 => {
            let len = u32::try_from(payload.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message over 4 GiB"))?;
            out.write_all(&len.to_le_bytes())?;
            out.write_all(payload)
        }
        Frame::Raw(_) => out.write_all(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], frame: Frame, max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut r = FrameReader::with_capacity(7, input, frame, max)?;
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while r.next_into(&mut buf)? {
            out.push(buf.clone());
        }
        Ok(out)
    }

    #[test]
    fn lines_split_on_newline_and_keep_a_last_unterminated_line() {
        let m = read_all(b"a\n\nbcd\nef", Frame::Lines, 16).unwrap();
        assert_eq!(m, [&b"a"[..], b"", b"bcd", b"ef"]);
    }

    #[test]
    fn a_line_longer_than_a_message_is_an_error_not_unbounded_memory() {
        let long = vec![b'x'; 100];
        assert!(matches!(
            read_all(&long, Frame::Lines, 99),
            Err(FrameError::LineTooLong { max: 99 })
        ));
        assert_eq!(read_all(&long, Frame::Lines, 100).unwrap().len(), 1);
    }

    #[test]
    fn len32_round_trips_and_an_oversized_length_is_refused() {
        let mut enc = Vec::new();
        write_frame(&mut enc, b"hello", Frame::Len32).unwrap();
        write_frame(&mut enc, b"", Frame::Len32).unwrap();
        assert_eq!(
            read_all(&enc, Frame::Len32, 5).unwrap(),
            [&b"hello"[..], b""]
        );
        assert!(matches!(
            read_all(&enc, Frame::Len32, 4),
            Err(FrameError::TooLarge { len: 5, max: 4 })
        ));
    }

    #[test]
    fn input_ending_inside_a_length_prefix_is_truncated_not_a_clean_end() {
        assert!(matches!(
            read_all(&[5, 0], Frame::Len32, 16),
            Err(FrameError::Truncated {
                expected: 4,
                got: 2
            })
        ));
        assert!(matches!(
            read_all(&[3, 0, 0, 0, b'a'], Frame::Len32, 16),
            Err(FrameError::Truncated {
                expected: 7,
                got: 5
            })
        ));
    }

    #[test]
    fn raw_chunks_cut_the_input_and_the_last_may_be_short() {
        let m = read_all(b"abcdefg", Frame::Raw(3), 3).unwrap();
        assert_eq!(m, [&b"abc"[..], b"def", b"g"]);
        assert!(matches!(
            read_all(b"", Frame::Raw(4), 3),
            Err(FrameError::TooLarge { len: 4, max: 3 })
        ));
    }

    #[test]
    fn frame_names_parse_back() {
        for f in [Frame::Lines, Frame::Len32, Frame::Raw(1), Frame::Raw(4000)] {
            assert_eq!(Frame::parse(&f.to_string()), Some(f));
        }
        for bad in ["raw:0", "raw:", "raw:-1", "LINES", ""] {
            assert_eq!(Frame::parse(bad), None, "{bad}");
        }
    }
}
