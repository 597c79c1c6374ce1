//! What one client may hold of serve: a connection slot (at most
//! `max_connections` at once; one more is closed at once), and, on it, at most
//! `header_timeout` for the TLS handshake, for the first request and for each
//! request's headers. Idle or slowly trickling clients cannot hold serve's file
//! descriptors, and a node asking for its document is answered meanwhile
//! (axum-server otherwise leaves hyper's header timeout off).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// serve's connection limits (`--max-connections`, `--header-timeout`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// `server` with the timeouts: the first request, and each request's headers.
    /// (The TLS handshake's is set on the TLS acceptor.)
    pub fn bound<Addr: axum_server::Address, Acc>(
        self,
        server: axum_server::Server<Addr, Acc>,
    ) -> axum_server::Server<Addr, Acc> {
        let mut server = server.first_request_timeout(self.header_timeout);
        server
            .http_builder()
            .http1()
            .header_read_timeout(self.header_timeout);
        server
    }
}

/// Takes a connection slot before anything else (the TLS handshake included).
#[derive(Clone)]
pub struct Slots {
    slots: Arc<Semaphore>,
}

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots {
            slots: Arc::new(Semaphore::new(max)),
        }
    }
}

impl<I, S> Accept<I, S> for Slots
where
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = Held<I>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Held<I>, S)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        std::future::ready(match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Ok((
                Held {
                    inner: stream,
                    _permit: permit,
                },
                service,
            )),
            Err(_) => {
                tracing::warn!("connection refused: serve holds --max-connections already");
                Err(io::Error::other("too many connections"))
            }
        })
    }
}

/// A connection and the slot it holds until it closes.
pub struct Held<I> {
    inner: I,
    _permit: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Held<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Held<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
}

/// Raise this process's open-file limit to its hard limit: every connection
/// is a file descriptor, and the default soft limit (often 1024) is below
/// `--max-connections`.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
