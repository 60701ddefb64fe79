//! What the fuzz targets share: cutting an input into reads, and checking
//! that an error message points into the file as `file:line:column`.

/// `bytes` cut into consecutive pieces whose sizes follow `seed`: the same
/// input arrives as a peer's reads might (one byte at a time, a few at a
/// time, or all at once).
pub fn pieces(bytes: &[u8], seed: u8) -> Vec<&[u8]> {
    let max = [1usize, 2, 3, 7, 9, 16, 64, 5000][usize::from(seed % 8)];
    let mut state = u32::from(seed) | 0x9e37_7900;
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        // xorshift32: cheap, deterministic sizes from the seed.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = 1 + (state as usize) % max;
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

/// Asserts that `message` starts with `file:LINE:COLUMN` where the line is
/// one of `text`'s YAML lines (or the one after its end) and both are at
/// least 1.
pub fn assert_located(message: &str, file: &str, text: &str) {
    let rest = message
        .strip_prefix(file)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or_else(|| panic!("error does not start with {file}: {message:?}"));
    let mut parts = rest.splitn(3, ':');
    let line: u64 = parts
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no line number: {message:?}"));
    let column: u64 = parts
        .next()
        .and_then(|c| c.trim_start().split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no column number: {message:?}"));
    // YAML breaks lines at LF, CRLF and a lone CR alike.
    let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count() as u64;
    assert!(line >= 1 && column >= 1, "line or column 0: {message:?}");
    assert!(
        line <= lines + 1,
        "line {line} past the text's {lines} lines: {message:?}"
    );
}
