//! Reading Nomad's answer bodies within bounds: an answer is read up to [`MAX_ANSWER`] bytes
//! (reqwest has no limit of its own, and a runaway or hostile server could otherwise make the
//! process hold any amount), and an error body only up to [`MAX_ERROR_BODY`] (only its first
//! line is ever shown).

use super::error::{Error, transport_error};

/// The largest answer read. A node's listing carries each allocation's whole job (about 1.2 MB
/// for a busy node); a page of 1000 stubs is under 1 MB: this is two orders of magnitude above
/// anything real, and only stops a runaway.
pub const MAX_ANSWER: usize = 256 * 1024 * 1024;
/// The most of an error body read: Nomad's are one line of text.
pub const MAX_ERROR_BODY: usize = 8 * 1024;

/// Reads a whole answer of at most `limit` bytes; a larger one is an error, refused from its
/// `Content-Length` before anything is read, else as soon as it passes the limit.
pub(super) async fn read_answer(
    mut response: reqwest::Response,
    limit: usize,
    shown: &str,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, Error> {
    let too_large = || Error::TooLarge {
        url: shown.to_owned(),
        limit,
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(shown, &e, timeout))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first [`MAX_ERROR_BODY`] bytes of an error answer, whatever became of the rest (a
/// broken or endless body is cut there).
pub(super) async fn error_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    body
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers one request with `head` and then `body`, and the response.
    async fn answer(head: &'static str, body: Vec<u8>) -> reqwest::Response {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        });
        // reqwest is built without a default TLS provider; plain HTTP needs none, but the
        // client wants one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::get(format!("http://{address}/"))
            .await
            .expect("response")
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn an_answer_over_the_limit_is_refused_by_its_length_or_as_it_streams() {
        let declared = answer(
            "HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n",
            vec![b'x'; 4096],
        )
        .await;
        let err = read_answer(declared, 1024, "u", TIMEOUT)
            .await
            .expect_err("too large");
        assert!(matches!(err, Error::TooLarge { limit: 1024, .. }), "{err}");
        // No length: closed-delimited, counted as it comes.
        let streamed = answer(
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
            vec![b'x'; 4096],
        )
        .await;
        let err = read_answer(streamed, 1024, "u", TIMEOUT)
            .await
            .expect_err("too large");
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        let fits = answer(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            b"abc".to_vec(),
        )
        .await;
        assert_eq!(
            read_answer(fits, 1024, "u", TIMEOUT).await.expect("read"),
            b"abc"
        );
    }

    #[tokio::test]
    async fn an_error_body_is_cut_at_its_limit() {
        let long = answer(
            "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n",
            vec![b'e'; 3 * MAX_ERROR_BODY],
        )
        .await;
        assert_eq!(error_body(long).await.len(), MAX_ERROR_BODY);
    }
}
