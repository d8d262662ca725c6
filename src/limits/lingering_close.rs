//! A lingering close, as nginx and Apache do it. An HTTP/1 answer can be ready before its request body has
//! arrived (a refused first frame, a shed call, an oversized body); hyper then sends the answer and closes the
//! connection with the rest of the body unread. A socket closed with unread bytes, or receiving bytes after its
//! close, answers with a TCP reset, and a client still sending its body (HTTP/1 clients send it all before they
//! read) sees "connection reset" instead of the answer. So a connection's close first sends FIN after the
//! answer, then reads and discards what the client still sends until it closes too, for a bounded time and
//! number of bytes.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};

/// Longest a closing connection waits for its client to stop sending (Apache's lingering close: 2 s).
const LINGER_TIME: Duration = Duration::from_secs(2);
/// Most bytes a closing connection reads and discards: a whole request body at the size limit, base64-encoded
/// as grpc-web-text sends it.
const LINGER_BYTES: usize = 2 * super::MAX_MESSAGE_BYTES;
/// Bytes discarded per read.
const DISCARD_BUFFER: usize = 8 * 1024;

/// `inner` whose shutdown lingers (see the module).
pub struct LingeringClose<IO> {
    inner: IO,
    /// Set once the write side is shut: the linger has begun and ends at this deadline.
    linger: Option<Pin<Box<Sleep>>>,
    discarded: usize,
}

impl<IO> LingeringClose<IO> {
    pub fn new(inner: IO) -> Self {
        Self { inner, linger: None, discarded: 0 }
    }
}

/// Reads and discards from `inner` until the client closes or fails, `linger` passes or the bytes are spent.
fn poll_discard<IO: AsyncRead + Unpin>(
    inner: &mut IO,
    linger: &mut Pin<Box<Sleep>>,
    discarded: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let mut buffer = [0u8; DISCARD_BUFFER];
    while *discarded < LINGER_BYTES && linger.as_mut().poll(cx).is_pending() {
        let mut read = ReadBuf::new(&mut buffer);
        match ready!(Pin::new(&mut *inner).poll_read(cx, &mut read)) {
            Ok(()) if !read.filled().is_empty() => *discarded += read.filled().len(),
            _ => return Poll::Ready(()),
        }
    }
    Poll::Ready(())
}

impl<IO: AsyncRead + Unpin> AsyncRead for LingeringClose<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingeringClose<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Self { inner, linger, discarded } = &mut *self;
        let linger = match linger {
            Some(linger) => linger,
            None => {
                ready!(Pin::new(&mut *inner).poll_shutdown(cx))?;
                linger.insert(Box::pin(tokio::time::sleep(LINGER_TIME)))
            }
        };
        poll_discard(inner, linger, discarded, cx).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The client's side of a socket pair whose server side lingers; the server's shutdown runs in a task.
    async fn closing_pair() -> (tokio::io::DuplexStream, tokio::task::JoinHandle<io::Result<()>>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let closing = tokio::spawn(async move { LingeringClose::new(server).shutdown().await });
        (client, closing)
    }

    #[tokio::test]
    async fn the_close_waits_for_the_client_and_discards_what_it_sends() {
        let (mut client, closing) = closing_pair().await;
        let mut answer = Vec::new();
        // The write side is shut first: the client sees the end of the answer at once.
        client.read_to_end(&mut answer).await.unwrap();
        client.write_all(&[7u8; 100_000]).await.unwrap();
        assert!(!closing.is_finished(), "the close did not wait for the client");
        drop(client);
        closing.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_closes_is_left_after_the_linger_time() {
        let (_client, closing) = closing_pair().await;
        tokio::time::sleep(LINGER_TIME - Duration::from_millis(10)).await;
        assert!(!closing.is_finished());
        tokio::time::sleep(Duration::from_millis(20)).await;
        closing.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_client_sending_without_end_is_left_after_the_byte_limit() {
        let (mut client, closing) = closing_pair().await;
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0;
        while !closing.is_finished() {
            // A write fails once the server side is gone.
            if client.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
            tokio::task::yield_now().await;
        }
        closing.await.unwrap().unwrap();
        assert!((LINGER_BYTES..LINGER_BYTES + 2 * chunk.len()).contains(&sent), "sent {sent}");
    }
}
