//! Accepted connections that a kill closes at once.
//!
//! tonic spawns one task per accepted connection, so aborting the server task
//! leaves them running. Each accepted socket is therefore wrapped in a
//! [`KillableIo`]: once the kill token is cancelled, every read and write
//! fails, hyper drops the connection and the socket closes. Each wrapper also
//! holds a [`TaskTrackerToken`], so a kill can wait until every socket is
//! really closed.
//!
//! ```text
//!   listener ─► KillableIo(TcpStream) ─► tonic/hyper connection task
//!                   │ kill token cancelled
//!                   └─► read/write error ─► hyper drops the IO ─► close()
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// One accepted TCP connection that fails all I/O once killed.
#[derive(Debug)]
pub(crate) struct KillableIo {
    stream: TcpStream,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    _open: TaskTrackerToken,
}

impl KillableIo {
    /// Wraps `stream`; `kill` closes it, `open` counts it as open until dropped.
    pub(crate) fn new(stream: TcpStream, kill: CancellationToken, open: TaskTrackerToken) -> Self {
        KillableIo {
            stream,
            killed: Box::pin(kill.cancelled_owned()),
            _open: open,
        }
    }

    /// Fails when killed; otherwise registers the task to be woken by a kill.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.killed.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "test backend killed",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for KillableIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}
