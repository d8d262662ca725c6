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
    time::{Instant, Sleep},
};

/// How long a closing connection waits for more from a client that sent nothing since (Apache waits 2 s per
/// read, nginx 5 s).
const LINGER_QUIET: Duration = Duration::from_secs(2);
/// Longest a closing connection lingers however steadily its client sends (nginx and Apache: 30 s).
const LINGER_TOTAL: Duration = Duration::from_secs(30);
/// Most bytes a closing connection reads and discards: a whole request body at the size limit, base64-encoded
/// as grpc-web-text sends it.
const LINGER_BYTES: usize = 2 * super::MAX_MESSAGE_BYTES;
/// Bytes discarded per read.
const DISCARD_BUFFER: usize = 8 * 1024;

/// `inner` whose shutdown lingers (see the module).
pub struct LingeringClose<IO> {
    inner: IO,
    /// Set once the write side is shut: the linger has begun.
    linger: Option<Linger>,
}

impl<IO> LingeringClose<IO> {
    pub fn new(inner: IO) -> Self {
        Self { inner, linger: None }
    }
}

/// A linger under way.
struct Linger {
    /// Fires [`LINGER_QUIET`] after the client last sent something, or at `gives_up`, whichever is first.
    timer: Pin<Box<Sleep>>,
    gives_up: Instant,
    discarded: usize,
}

impl Linger {
    fn start() -> Self {
        let now = Instant::now();
        Self {
            timer: Box::pin(tokio::time::sleep_until(now + LINGER_QUIET)),
            gives_up: now + LINGER_TOTAL,
            discarded: 0,
        }
    }

    /// Reads and discards from `inner` until the client closes or fails, the timer fires or the bytes are spent.
    fn poll_discard<IO: AsyncRead + Unpin>(&mut self, inner: &mut IO, cx: &mut Context<'_>) -> Poll<()> {
        let mut buffer = [0u8; DISCARD_BUFFER];
        while self.discarded < LINGER_BYTES && self.timer.as_mut().poll(cx).is_pending() {
            let mut read = ReadBuf::new(&mut buffer);
            match ready!(Pin::new(&mut *inner).poll_read(cx, &mut read)) {
                Ok(()) if !read.filled().is_empty() => {
                    self.discarded += read.filled().len();
                    let quiet_until = (Instant::now() + LINGER_QUIET).min(self.gives_up);
                    self.timer.as_mut().reset(quiet_until);
                }
                _ => return Poll::Ready(()),
            }
        }
        Poll::Ready(())
    }
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
        let Self { inner, linger } = &mut *self;
        let linger = match linger {
            Some(linger) => linger,
            None => {
                ready!(Pin::new(&mut *inner).poll_shutdown(cx))?;
                linger.insert(Linger::start())
            }
        };
        linger.poll_discard(inner, cx).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Longer than any wait these tests expect: a linger that never ends fails the test instead of hanging it.
    const NEVER: Duration = Duration::from_secs(60);

    /// The client's side of a socket pair whose server side lingers; the server's shutdown runs in a task.
    fn closing_pair() -> (tokio::io::DuplexStream, tokio::task::JoinHandle<io::Result<()>>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let closing = tokio::spawn(async move { LingeringClose::new(server).shutdown().await });
        (client, closing)
    }

    #[tokio::test]
    async fn the_close_waits_for_the_client_and_discards_what_it_sends() {
        let (mut client, closing) = closing_pair();
        let mut answer = Vec::new();
        // The write side is shut first: the client sees the end of the answer at once.
        tokio::time::timeout(NEVER, client.read_to_end(&mut answer)).await.expect("no FIN").unwrap();
        client.write_all(&[7u8; 100_000]).await.unwrap();
        assert!(!closing.is_finished(), "the close did not wait for the client");
        drop(client);
        tokio::time::timeout(NEVER, closing).await.expect("the close did not end").unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_goes_quiet_is_left_after_the_quiet_time() {
        let (_client, closing) = closing_pair();
        tokio::time::sleep(LINGER_QUIET - Duration::from_millis(10)).await;
        assert!(!closing.is_finished());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(closing.is_finished(), "the close waited past the quiet time");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_still_sending_is_waited_for_up_to_the_total_time() {
        let (mut client, closing) = closing_pair();
        let pace = LINGER_QUIET / 2;
        let sending = tokio::spawn(async move {
            while client.write_all(b"x").await.is_ok() {
                tokio::time::sleep(pace).await;
            }
        });
        tokio::time::sleep(LINGER_TOTAL - pace).await;
        assert!(!closing.is_finished(), "the close left a client that was still sending");
        tokio::time::sleep(2 * pace).await;
        assert!(closing.is_finished(), "the close waited past the total time");
        sending.abort();
    }

    #[tokio::test]
    async fn a_client_sending_without_end_is_left_after_the_byte_limit() {
        let (mut client, closing) = closing_pair();
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0;
        // A write fails once the server side is gone.
        while client.write_all(&chunk).await.is_ok() {
            sent += chunk.len();
            assert!(sent <= 2 * LINGER_BYTES, "the close read {sent} bytes");
        }
        tokio::time::timeout(NEVER, closing).await.expect("the close did not end").unwrap().unwrap();
        assert!((LINGER_BYTES - chunk.len()..LINGER_BYTES + 2 * chunk.len()).contains(&sent), "sent {sent}");
    }
}
