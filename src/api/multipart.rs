//! A streaming `multipart/form-data` reader that yields the bytes of the uploaded file part,
//! and the rule that recognises a multipart body sent under another Content-Type.
//!
//! Pure: bytes in, file bytes out, bounded memory (the part headers are capped, and at most
//! one delimiter's length of file bytes is held back while looking for the boundary).
//! The file part is the first part whose Content-Disposition has `name="file"` or a
//! `filename`; other parts are skipped.

/// Part headers larger than this are refused, and so is a longer preamble.
const MAX_PART_HEADERS: usize = 8 * 1024;
/// Most transport padding (blanks) allowed between a boundary and its CRLF.
const MAX_PADDING: usize = 64;
/// How much of a body is inspected to recognise multipart under another Content-Type.
pub const SNIFF_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("multipart body does not start with its boundary")]
    NoBoundary,
    #[error("multipart part headers are too large or malformed")]
    BadHeaders,
    #[error("multipart body has no file part")]
    NoFile,
    #[error("multipart body ended before its closing boundary")]
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first boundary line.
    Preamble,
    /// Reading a part's headers.
    Headers,
    /// Inside a part's body; `emit` is whether it is the file.
    Body { emit: bool },
    /// After a delimiter: "--" ends the body, CRLF starts another part.
    AfterDelimiter,
    /// The closing delimiter was seen; the epilogue is ignored.
    Done,
}

pub struct MultipartReader {
    /// "\r\n--" + boundary: what ends a part body.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: State,
    found_file: bool,
    /// The file part's `filename` parameter, as sent.
    filename: Option<String>,
    /// In the preamble and part headers, how much of the buffer (from the state's start) is
    /// already known to hold no marker, so that a body sent in tiny pieces is searched once
    /// in all, not once per piece.
    searched: usize,
}

/// The `filename="..."` (or bare `filename=...`) parameter of a Content-Disposition line.
fn disposition_filename(line: &str) -> Option<String> {
    let (name, value) = line.split_once(':')?;
    if !name.trim().eq_ignore_ascii_case("content-disposition") {
        return None;
    }
    value.split(';').find_map(|param| {
        let (k, v) = param.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// The boundary parameter of a `multipart/form-data` Content-Type, if it is one.
pub fn boundary_from_content_type(value: &str) -> Option<String> {
    let mut parts = value.split(';');
    let mime = parts.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        valid_boundary(v.as_bytes()).then(|| v.to_string())
    })
}

fn valid_boundary(b: &[u8]) -> bool {
    (1..=70).contains(&b.len()) && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ')
}

/// Recognises a multipart body sent under another Content-Type: its first line is `--` plus a
/// 1–70 character boundary plus CRLF, and `Content-Disposition: form-data` appears within its
/// first 1 KiB. Returns the boundary.
pub fn sniff_boundary(head: &[u8]) -> Option<String> {
    let head = head.get(..SNIFF_BYTES.min(head.len()))?;
    let rest = head.strip_prefix(b"--")?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let boundary = rest.get(..end)?;
    if !valid_boundary(boundary) {
        return None;
    }
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let needle = b"content-disposition: form-data";
    lower
        .windows(needle.len())
        .any(|w| w == needle)
        .then(|| String::from_utf8_lossy(boundary).into_owned())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `find` starting at `from`, giving the position in all of `hay`.
fn find_from(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    find(hay.get(from..)?, needle).map(|at| at + from)
}

/// Where the next search of a buffer that grew may start: every position at which the
/// whole needle fitted in the `len` bytes already searched is known not to hold it.
fn resume_at(len: usize, needle: &[u8]) -> usize {
    (len + 1).saturating_sub(needle.len())
}

impl MultipartReader {
    pub fn new(boundary: &str) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        Self {
            delimiter,
            buf: Vec::new(),
            state: State::Preamble,
            found_file: false,
            filename: None,
            searched: 0,
        }
    }

    /// Feeds body bytes; appends the file bytes now known to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), MultipartError> {
        if self.state == State::Done {
            return Ok(());
        }
        self.buf.extend_from_slice(input);
        let mut pos = 0usize;
        loop {
            let avail = self.buf.get(pos..).unwrap_or_default();
            match self.state {
                State::Preamble => {
                    // The first boundary may start the body without a preceding CRLF.
                    let first = &self.delimiter[2..];
                    if avail.len() < first.len() {
                        break;
                    }
                    if avail.starts_with(first) {
                        pos += first.len();
                        self.state = State::AfterDelimiter;
                        self.searched = 0;
                    } else if let Some(at) = find_from(avail, &self.delimiter, self.searched) {
                        if at > MAX_PART_HEADERS {
                            return Err(MultipartError::NoBoundary);
                        }
                        pos += at + self.delimiter.len();
                        self.state = State::AfterDelimiter;
                        self.searched = 0;
                    } else {
                        // Each limit here bounds where a marker may start, whether the body
                        // came in one piece or many: give up only once a marker starting at
                        // the limit would have arrived whole.
                        if avail.len() >= MAX_PART_HEADERS + self.delimiter.len() {
                            return Err(MultipartError::NoBoundary);
                        }
                        self.searched = resume_at(avail.len(), &self.delimiter);
                        break;
                    }
                }
                State::AfterDelimiter => {
                    if avail.len() < 2 {
                        break;
                    }
                    if avail.starts_with(b"--") {
                        self.state = State::Done;
                        pos = self.buf.len();
                        break;
                    }
                    // Transport padding (spaces/tabs) before the CRLF is allowed.
                    let Some(crlf) = find(avail, b"\r\n") else {
                        if avail.len() >= MAX_PADDING + 2 {
                            return Err(MultipartError::BadHeaders);
                        }
                        break;
                    };
                    if crlf > MAX_PADDING
                        || !avail[..crlf].iter().all(|c| *c == b' ' || *c == b'\t')
                    {
                        return Err(MultipartError::BadHeaders);
                    }
                    pos += crlf + 2;
                    self.state = State::Headers;
                }
                State::Headers => {
                    // A CRLF first is an empty header block; looking for CRLFCRLF first would
                    // take the start of the part body for headers when it holds a blank line.
                    let Some(end) = (if avail.starts_with(b"\r\n") {
                        Some(0)
                    } else {
                        find_from(avail, b"\r\n\r\n", self.searched)
                    }) else {
                        if avail.len() >= MAX_PART_HEADERS + 4 {
                            return Err(MultipartError::BadHeaders);
                        }
                        self.searched = resume_at(avail.len(), b"\r\n\r\n");
                        break;
                    };
                    if end > MAX_PART_HEADERS {
                        return Err(MultipartError::BadHeaders);
                    }
                    let original = String::from_utf8_lossy(&avail[..end]).into_owned();
                    let headers = original.to_ascii_lowercase();
                    let is_file = !self.found_file
                        && headers.lines().any(|l| {
                            l.starts_with("content-disposition:")
                                && l.contains("form-data")
                                && (l.contains("name=\"file\"") || l.contains("filename="))
                        });
                    if is_file {
                        self.found_file = true;
                        self.filename = original.lines().find_map(disposition_filename);
                    }
                    pos += if end == 0 { 2 } else { end + 4 };
                    self.state = State::Body { emit: is_file };
                    self.searched = 0;
                }
                State::Body { emit } => {
                    if let Some(at) = find(avail, &self.delimiter) {
                        if emit {
                            out.extend_from_slice(&avail[..at]);
                        }
                        pos += at + self.delimiter.len();
                        self.state = State::AfterDelimiter;
                    } else {
                        // Keep back what could be the start of a delimiter.
                        let keep = (self.delimiter.len() - 1).min(avail.len());
                        let take = avail.len() - keep;
                        if emit {
                            out.extend_from_slice(&avail[..take]);
                        }
                        pos += take;
                        break;
                    }
                }
                State::Done => break,
            }
        }
        self.buf.drain(..pos.min(self.buf.len()));
        Ok(())
    }

    /// The file part's filename, once its headers were read.
    pub fn filename(&self) -> Option<&str> {
        self.filename.as_deref()
    }

    /// The body ended: it must have closed properly and carried a file part.
    pub fn finish(&self) -> Result<(), MultipartError> {
        match (self.state, self.found_file) {
            (State::Done, true) => Ok(()),
            (State::Done, false) => Err(MultipartError::NoFile),
            (State::Preamble, _) => Err(MultipartError::NoBoundary),
            _ => Err(MultipartError::Truncated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(boundary: &str, file: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fw.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        b.extend_from_slice(file);
        b.extend_from_slice(format!("\r\n--{boundary}--\r\nepilogue").as_bytes());
        b
    }

    fn parse(boundary: &str, data: &[u8], step: usize) -> Result<Vec<u8>, MultipartError> {
        let mut r = MultipartReader::new(boundary);
        let mut out = Vec::new();
        for piece in data.chunks(step) {
            r.feed(piece, &mut out)?;
        }
        r.finish()?;
        Ok(out)
    }

    #[test]
    fn extracts_the_file_part_in_any_piece_size() {
        let file: Vec<u8> = (0..5000u32)
            .map(|i| (i * 7) as u8)
            .chain(b"\r\n--almost".iter().copied())
            .collect();
        let data = body("XyZ123", &file);
        for step in [1, 2, 3, 7, 64, 1000, data.len()] {
            assert_eq!(parse("XyZ123", &data, step).unwrap(), file, "step {step}");
        }
    }

    #[test]
    fn errors() {
        let data = body("b", b"abc");
        assert_eq!(
            parse("b", &data[..data.len() - 20], 5),
            Err(MultipartError::Truncated)
        );
        assert_eq!(parse("other", &data, 5), Err(MultipartError::NoBoundary));
        let no_file = b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n--b--\r\n";
        assert_eq!(parse("b", no_file, 3), Err(MultipartError::NoFile));
        let huge = [b"--b\r\n".as_slice(), &vec![b'a'; 10_000]].concat();
        assert_eq!(parse("b", &huge, 100), Err(MultipartError::BadHeaders));
    }

    #[test]
    fn empty_part_headers_end_at_the_first_crlf() {
        // Found by the multipart fuzz target: read in one piece, a part without headers took
        // its body up to a blank line for headers, here making a note part the file.
        let data =
            b"--b\r\n\r\nnote\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nX\r\n--b--";
        for step in [1, 2, data.len()] {
            assert_eq!(
                parse("b", data, step),
                Err(MultipartError::NoFile),
                "step {step}"
            );
        }
    }

    #[test]
    fn limits_do_not_depend_on_how_the_body_arrives() {
        // Found by the multipart fuzz target (padding): read whole, 100 blanks after a
        // boundary were accepted; read in pieces, refused. Each limit now bounds where the
        // marker starts, so both ends of each limit answer alike in any piece size.
        let file_part = "Content-Disposition: form-data; name=\"file\"\r\n\r\nF\r\n--b--";
        let padded = |n: usize| format!("--b{}\r\n{file_part}", " ".repeat(n));
        let preamble = |n: usize| format!("{}\r\n--b\r\n{file_part}", "p".repeat(n));
        let headers = |n: usize| {
            let pad = n - "X-Pad: \r\n".len() - file_part.find("\r\n\r\n").unwrap_or(0);
            format!("--b\r\nX-Pad: {}\r\n{file_part}", "p".repeat(pad))
        };
        let cases = [
            (padded(MAX_PADDING), Ok(b"F".to_vec())),
            (padded(MAX_PADDING + 1), Err(MultipartError::BadHeaders)),
            (preamble(MAX_PART_HEADERS), Ok(b"F".to_vec())),
            (
                preamble(MAX_PART_HEADERS + 1),
                Err(MultipartError::NoBoundary),
            ),
            (headers(MAX_PART_HEADERS), Ok(b"F".to_vec())),
            (
                headers(MAX_PART_HEADERS + 1),
                Err(MultipartError::BadHeaders),
            ),
        ];
        for (i, (data, expected)) in cases.iter().enumerate() {
            // 1, 3 and 7 also split the markers.
            for step in [1, 2, 3, 7, 64, 1000, data.len()] {
                assert_eq!(
                    &parse("b", data.as_bytes(), step),
                    expected,
                    "case {i}, step {step}"
                );
            }
        }
    }

    #[test]
    fn content_type_and_sniffing() {
        assert_eq!(
            boundary_from_content_type("multipart/form-data; boundary=abc"),
            Some("abc".into())
        );
        assert_eq!(
            boundary_from_content_type("Multipart/Form-Data; charset=x; boundary=\"a b\""),
            Some("a b".into())
        );
        assert_eq!(boundary_from_content_type("application/octet-stream"), None);
        assert_eq!(boundary_from_content_type("multipart/form-data"), None);
        let data = body("----abc", b"x");
        assert_eq!(sniff_boundary(&data), Some("----abc".into()));
        assert_eq!(sniff_boundary(b"--abc\r\nno disposition here"), None);
        assert_eq!(sniff_boundary(b"\x7fELF binary"), None);
        assert_eq!(
            sniff_boundary(&[b"--".as_slice(), &[b'a'; 71], b"\r\n"].concat()),
            None
        );
    }
}
