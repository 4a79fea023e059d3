//! Just enough HTTP/1.1 for the control API: one request per connection, and a response parser
//! that works on a growing buffer, so the client can stop reading as soon as the body is whole.

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A bodiless request. No Origin or Referer: the daemon refuses requests that carry them, since
/// only a browser would send them.
pub fn request(method: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
}

/// A request with a JSON body.
pub fn request_json(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Parses the bytes read so far. `Ok(None)`: the response is not complete yet, read more.
/// With `eof` set nothing more will come, so an incomplete response is an error.
pub fn parse(buf: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return incomplete(eof, "the connection closed inside the response headers");
    };
    let head =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| "the response headers are not UTF-8".to_owned())?;
    let mut lines = head.split("\r\n");
    let status = parse_status_line(lines.next().unwrap_or_default())?;
    let headers = lines
        .map(|line| {
            line.split_once(':')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("malformed response header {line:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut response = Response { status, headers, body: Vec::new() };
    let rest = &buf[head_end + 4..];
    // 1xx, 204 and 304 never have a body.
    if status < 200 || status == 204 || status == 304 {
        return Ok(Some(response));
    }
    let chunked =
        response.header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        decode_chunked(rest, eof)?
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().map_err(|_| format!("invalid Content-Length {len:?}"))?;
        if rest.len() >= len {
            Some(rest[..len].to_vec())
        } else {
            return incomplete(eof, "the connection closed before the end of the body");
        }
    } else if eof {
        // No length given: the body runs to the end of the connection.
        Some(rest.to_vec())
    } else {
        None
    };
    Ok(body.map(|body| {
        response.body = body;
        response
    }))
}

fn incomplete<T>(eof: bool, what: &str) -> Result<Option<T>, String> {
    if eof {
        Err(what.to_owned())
    } else {
        Ok(None)
    }
}

fn parse_status_line(line: &str) -> Result<u16, String> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(format!("not an HTTP/1.1 status line: {line:?}"));
    }
    code.parse().map_err(|_| format!("invalid status code in {line:?}"))
}

/// Decodes a chunked body; trailers after the last chunk are ignored.
fn decode_chunked(mut rest: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return incomplete(eof, "the connection closed inside a chunked body");
        };
        let size_line = std::str::from_utf8(&rest[..line_end]).unwrap_or_default();
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size_hex, 16).map_err(|_| format!("invalid chunk size {size_line:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if rest.len() < size + 2 {
            return incomplete(eof, "the connection closed inside a chunked body");
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err("a chunk does not end with CRLF".to_owned());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &str) -> Response {
        parse(raw.as_bytes(), true).unwrap().unwrap()
    }

    #[test]
    fn request_is_minimal_and_has_no_origin() {
        let r = request("POST", "/v1/reload");
        assert!(r.starts_with("POST /v1/reload HTTP/1.1\r\n"));
        assert!(r.contains("Content-Length: 0\r\n") && r.ends_with("\r\n\r\n"));
        assert!(!r.to_ascii_lowercase().contains("origin") && !r.contains("Referer"));
    }

    #[test]
    fn json_requests_carry_their_body() {
        let r = request_json("POST", "/v1/devices/a1b2c3d4/approve", b"{\"scopes\":null}");
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("POST /v1/devices/a1b2c3d4/approve HTTP/1.1\r\n"));
        assert!(text.contains("Content-Type: application/json\r\nContent-Length: 15\r\n\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"scopes\":null}"));
    }

    #[test]
    fn content_length_body() {
        let raw =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
        let r = complete(raw);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.body, b"{\"ok\":true}");
        // The whole body is there: no need to wait for the end of the connection.
        assert!(parse(raw.as_bytes(), false).unwrap().is_some());
        assert_eq!(parse(&raw.as_bytes()[..raw.len() - 1], false), Ok(None));
        assert!(parse(&raw.as_bytes()[..raw.len() - 1], true).is_err());
    }

    #[test]
    fn chunked_body() {
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n6;ext=1\r\n:[1,2]\r\n1\r\n}\r\n0\r\n\r\n";
        assert_eq!(complete(raw).body, b"{\"a\":[1,2]}");
        let cut = &raw.as_bytes()[..raw.len() - 8];
        assert_eq!(parse(cut, false), Ok(None));
        assert!(parse(cut, true).is_err());
        let bad = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(parse(bad.as_bytes(), true).is_err());
    }

    #[test]
    fn error_status_keeps_its_body() {
        let body = r#"{"error":{"code":"conflict","message":"token comes from env"}}"#;
        let raw = format!("HTTP/1.1 409 Conflict\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        let r = complete(&raw);
        assert_eq!(r.status, 409);
        assert!(!r.is_success());
        assert_eq!(r.body, body.as_bytes());
    }

    #[test]
    fn body_without_length_runs_to_eof() {
        let raw = "HTTP/1.1 503 Service Unavailable\r\n\r\n{}";
        assert_eq!(parse(raw.as_bytes(), false), Ok(None));
        assert_eq!(complete(raw).body, b"{}");
        assert_eq!(complete("HTTP/1.1 204 No Content\r\n\r\n").body, b"");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n", true).is_err());
        assert!(parse(b"HTTP/1.1 2000 OK\r\n\r\n", true).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", true).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\n", true).is_err());
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n", false), Ok(None));
    }
}
