//! A plain HTTP/1.1 GET (hyper's client connection over a TCP stream), shared by the
//! probes of faultctl and faultd's health guard: `http://` only, one request per
//! connection, the body read whole (at most [`MAX_BODY`] bytes).
//!
//! `curl -s -o- http://HOST:PORT/PATH` is the equivalent command.

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;

/// The largest body read; a longer answer is an error.
pub const MAX_BODY: usize = 4 << 20;

/// An `http://host[:port][/path][?query]` URL, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    uri: Uri,
    /// `host:port` to connect to (port 80 unless given).
    addr: String,
}

impl HttpUrl {
    /// Parses `text`; the reason names what is wrong (https, no host, not a URL).
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let uri: Uri = text
            .parse()
            .map_err(|e| format!("{text:?} is not a URL ({e})"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(s) => {
                return Err(format!(
                    "{text:?}: only http:// is supported (not {s}://), a plain HTTP/1.1 GET"
                ));
            }
            None => return Err(format!("{text:?} is not an http:// URL")),
        }
        let auth = uri
            .authority()
            .ok_or_else(|| format!("{text:?} has no host"))?;
        if auth.host().is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        let addr = format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80));
        Ok(HttpUrl { uri, addr })
    }

    /// The URL with `path` appended to its path (no double slash) and `query` as its
    /// query string (already encoded).
    pub fn join(&self, path: &str, query: &str) -> HttpUrl {
        let base = self.uri.path().trim_end_matches('/');
        let pq = if query.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{query}")
        };
        let uri = Uri::builder()
            .scheme("http")
            .authority(self.uri.authority().expect("checked").clone())
            .path_and_query(pq)
            .build()
            .expect("a valid URL plus an encoded path and query");
        HttpUrl {
            uri,
            addr: self.addr.clone(),
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.uri)
    }
}

/// What a GET got back.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// GETs `url` and reads the whole answer. Errors name the address and what failed
/// (connect, send, read); the caller bounds the time.
pub async fn get(url: &HttpUrl) -> Result<Answer, String> {
    let addr = url.addr();
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    // The connection task ends when the answer is read and `sender` is dropped.
    let conn = tokio::spawn(conn);
    let path = url
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let req = Request::get(path)
        .header(
            hyper::header::HOST,
            url.uri.authority().expect("checked").as_str(),
        )
        .header(hyper::header::USER_AGENT, "faultline-probe")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("read from {addr}: {e}"))?
        .to_bytes();
    drop(sender);
    conn.abort();
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:8080/health").unwrap();
        assert_eq!(u.addr(), "127.0.0.1:8080");
        assert_eq!(HttpUrl::parse("http://db").unwrap().addr(), "db:80");
        assert!(
            HttpUrl::parse("https://x")
                .unwrap_err()
                .contains("only http://")
        );
        assert!(HttpUrl::parse("prom:9090").is_err());
        let p = HttpUrl::parse("http://prom:9090/prometheus/").unwrap();
        assert_eq!(
            p.join("/api/v1/query", "query=up").to_string(),
            "http://prom:9090/prometheus/api/v1/query?query=up"
        );
        let p = HttpUrl::parse("http://prom:9090").unwrap();
        assert_eq!(
            p.join("/api/v1/query", "").to_string(),
            "http://prom:9090/api/v1/query"
        );
    }

    /// A chunked answer (as Go's net/http sends a long body) is read whole.
    #[tokio::test]
    async fn reads_a_chunked_body() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let n = c.read(&mut b).await.unwrap();
            assert!(String::from_utf8_lossy(&b[..n]).starts_with("GET /x?y=1 HTTP/1.1\r\n"));
            c.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
        });
        let a = get(&HttpUrl::parse(&format!("http://{addr}/x?y=1")).unwrap())
            .await
            .unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(&a.body[..], b"hello world");
        let e = get(&HttpUrl::parse("http://127.0.0.1:1/").unwrap())
            .await
            .unwrap_err();
        assert!(e.starts_with("connect 127.0.0.1:1: "), "{e}");
    }
}
