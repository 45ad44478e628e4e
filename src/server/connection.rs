//! Connections: accepting them, serving them with hyper, and ending those
//! that hold the server without using it.
//!
//! warp's own server sets no timeout, and hyper has one timer for two
//! different waits (its `header_read_timeout` also runs while a keep-alive
//! connection is idle). So each socket is wrapped in [`Guarded`], which
//! knows where its connection stands from the service around it: waiting
//! for a request head (at most [`Timeouts::head`] from the first byte, or
//! from the connection's start), idle between requests (at most
//! [`Timeouts::idle`]), or answering (a request body must arrive within
//! `idle`; an answer the client stops reading fails after
//! [`Timeouts::write`]). A connection past its time is closed.
//!
//! Accepting never stops the server: when the process is out of file
//! descriptors, the error is logged (once a second) and accepting resumes
//! as soon as connections close. And no client can take every descriptor:
//! each client (an IPv4 address or an IPv6 /64; a trusted proxy is many
//! clients and is not counted) may hold at most [`Admission::per_client`]
//! connections, a newcomer past that is closed at once; past three
//! quarters of [`Admission::most`] (the descriptors less a reserve for
//! files, databases and the services the server calls) idle connections
//! get a short idle time, and at `most` the idle connections of the client
//! holding the most are closed to make room for the newcomer.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use ipnet::IpNet;

use super::client::ClientKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use warp::http;

type Request = http::Request<hyper::body::Incoming>;

/// How long a connection may take at each stage.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From a connection's start, or the first byte of a request, to the
    /// end of its head.
    pub head: Duration,
    /// Between requests on a keep-alive connection, and for a request body.
    pub idle: Duration,
    /// For a write the client does not take.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            head: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(60),
        }
    }
}

/// How many connections the server keeps open.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Connections one client may hold open at once.
    pub per_client: usize,
    /// Connections in all: the open-file limit less [`RESERVE`].
    pub most: usize,
    /// Proxies whose connections carry many clients: not counted per client.
    pub trusted: Vec<IpNet>,
}

/// Descriptors kept for what is not a connection: files streamed, the
/// database, the connections to Stripe, GitHub and the mail server, logs.
pub const RESERVE: usize = 64;

/// How long a connection may idle once three quarters of `most` are open.
const IDLE_UNDER_PRESSURE: Duration = Duration::from_secs(2);

impl Admission {
    /// For a process that may open `descriptors` files.
    pub fn for_descriptors(descriptors: u64, per_client: usize, trusted: Vec<IpNet>) -> Admission {
        let descriptors = usize::try_from(descriptors).unwrap_or(usize::MAX);
        Admission {
            per_client,
            most: descriptors.saturating_sub(RESERVE).max(16),
            trusted,
        }
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::for_descriptors(1024, 256, Vec::new())
    }
}

/// The open connections, by client.
#[derive(Debug, Default)]
struct Registry {
    open: Mutex<Open>,
    /// `open.total`, readable without the lock (every idle wait reads it).
    total: std::sync::atomic::AtomicUsize,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Connections told to close that have not closed yet.
    closing: usize,
    next: u64,
    /// Each client's connections, by id, with their stages.
    clients: HashMap<Option<ClientKey>, HashMap<u64, Arc<Stage>>>,
}

impl Registry {
    /// Takes a place for a connection of `client` (`None`: a trusted
    /// proxy's), making room if the server is full; `None` when there is
    /// no place for it.
    fn admit(
        self: &Arc<Registry>,
        client: Option<ClientKey>,
        stage: Arc<Stage>,
        admission: &Admission,
    ) -> Option<Place> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = client
            && open.clients.get(&Some(key)).map_or(0, HashMap::len) >= admission.per_client
        {
            return None;
        }
        // Full: room is made by closing an idle connection, while the
        // connections still closing fit in half the reserve.
        if open.total >= admission.most && (open.closing >= RESERVE / 2 || !open.evict_idle()) {
            return None;
        }
        open.total += 1;
        self.total.store(open.total, Ordering::Relaxed);
        open.next += 1;
        let id = open.next;
        open.clients.entry(client).or_default().insert(id, stage);
        Some(Place {
            registry: self.clone(),
            client,
            id,
        })
    }

    /// Whether so many connections are open that idle ones should go soon.
    fn pressed(&self, admission: &Admission) -> bool {
        self.total.load(Ordering::Relaxed) * 4 >= admission.most * 3
    }
}

impl Open {
    /// Closes an idle connection of the client that holds the most, if any
    /// is idle; says whether one was.
    fn evict_idle(&mut self) -> bool {
        let mut clients: Vec<&HashMap<u64, Arc<Stage>>> = self.clients.values().collect();
        clients.sort_by_key(|connections| std::cmp::Reverse(connections.len()));
        let found = clients.into_iter().find_map(|connections| {
            connections
                .values()
                .find(|stage| stage.is_idle() && !stage.evicted.load(Ordering::Relaxed))
        });
        match found {
            Some(stage) => {
                stage.evict();
                self.closing += 1;
                true
            }
            None => false,
        }
    }
}

/// A connection's place in the registry, given back when it ends.
struct Place {
    registry: Arc<Registry>,
    client: Option<ClientKey>,
    id: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.registry.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(connections) = open.clients.get_mut(&self.client)
            && let Some(stage) = connections.remove(&self.id)
        {
            if connections.is_empty() {
                open.clients.remove(&self.client);
            }
            open.total = open.total.saturating_sub(1);
            self.registry.total.store(open.total, Ordering::Relaxed);
            if stage.evicted.load(Ordering::Relaxed) {
                open.closing = open.closing.saturating_sub(1);
            }
        }
    }
}

/// The address of the TCP peer of a request (a proxy, behind one).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Where a connection stands.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request head, since then.
    Head(Instant),
    /// A request is being handled: its body may still be read, since then.
    Handling(Instant),
    /// The answer is going out.
    Responding,
    /// Between requests, since then.
    Idle(Instant),
}

/// One connection's phase, shared by its socket and its service, and
/// whether the server wants it closed (and how to wake it to close).
#[derive(Debug)]
struct Stage {
    phase: Mutex<Phase>,
    evicted: AtomicBool,
    waker: AtomicWaker,
}

impl Stage {
    fn new() -> Stage {
        Stage {
            phase: Mutex::new(Phase::Head(Instant::now())),
            evicted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    fn get(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Between requests, or connected and silent.
    fn is_idle(&self) -> bool {
        matches!(self.get(), Phase::Idle(_) | Phase::Head(_))
    }

    /// Closes the connection at its next read.
    fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        self.waker.wake();
    }
}

/// A socket that fails its reads and writes once its connection is past
/// its time.
struct Guarded<T> {
    io: T,
    stage: Arc<Stage>,
    timeouts: Timeouts,
    registry: Arc<Registry>,
    admission: Arc<Admission>,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    /// When the current write first had to wait.
    write_waiting: Option<Instant>,
}

impl<T> Guarded<T> {
    fn read_deadline(&self) -> Option<Instant> {
        match self.stage.get() {
            Phase::Head(since) => Some(since + self.timeouts.head),
            Phase::Handling(since) => Some(since + self.timeouts.idle),
            Phase::Idle(since) => {
                let idle = if self.registry.pressed(&self.admission) {
                    self.timeouts.idle.min(IDLE_UNDER_PRESSURE)
                } else {
                    self.timeouts.idle
                };
                Some(since + idle)
            }
            Phase::Responding => None,
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

/// Polls `timer` for `deadline`, resetting it when the deadline moved.
fn expired(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && let Phase::Idle(_) = self.stage.get()
                {
                    // The first byte of the next request: its head is due.
                    self.stage.set(Phase::Head(Instant::now()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                let this = &mut *self;
                this.stage.waker.register(cx.waker());
                if this.stage.evicted.load(Ordering::Relaxed) && this.stage.is_idle() {
                    return Poll::Ready(Err(timed_out("closed to make room for others")));
                }
                match this.read_deadline() {
                    Some(deadline) if expired(&mut this.read_timer, deadline, cx) => {
                        Poll::Ready(Err(timed_out("the client sent nothing in time")))
                    }
                    _ => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> Guarded<T> {
    fn guard_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match poll(Pin::new(&mut self.io), cx) {
            Poll::Ready(result) => {
                self.write_waiting = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let since = *self.write_waiting.get_or_insert_with(Instant::now);
                if expired(&mut self.write_timer, since + self.timeouts.write, cx) {
                    return Poll::Ready(Err(timed_out("the client stopped reading")));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard_write(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// An answer's body that marks its connection idle once it is done.
struct Tracked<B> {
    body: B,
    stage: Arc<Stage>,
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.stage.set(Phase::Idle(Instant::now()));
    }
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The service of one connection: warp's filters, with the peer's address
/// in each request and the connection's phase kept.
struct Service<S> {
    inner: S,
    stage: Arc<Stage>,
    peer: SocketAddr,
}

impl<S, B> hyper::service::Service<Request> for Service<S>
where
    S: tower_service::Service<
            Request,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
{
    type Response = http::Response<Tracked<B>>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn call(&self, mut request: Request) -> Self::Future {
        self.stage.set(Phase::Handling(Instant::now()));
        request.extensions_mut().insert(Peer(self.peer));
        let mut inner = self.inner.clone();
        let stage = self.stage.clone();
        Box::pin(async move {
            let response = inner.call(request).await?;
            stage.set(Phase::Responding);
            Ok(response.map(|body| Tracked { body, stage }))
        })
    }
}

/// Accepts connections on `listener` and serves each with `service` until
/// `shutdown` completes; then waits for the requests under way to finish
/// (downloads among them).
pub async fn serve<S, B>(
    listener: tokio::net::TcpListener,
    service: S,
    timeouts: Timeouts,
    admission: Admission,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    S: tower_service::Service<
            Request,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_complaint: Option<Instant> = None;
    let registry = Arc::new(Registry::default());
    let admission = Arc::new(admission);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors (or another passing failure):
                // say so now and then, and let connections close.
                if last_complaint.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
                    tracing::error!("cannot accept a connection: {error}");
                    last_complaint = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stage = Arc::new(Stage::new());
        let client = (!admission.trusted.iter().any(|net| net.contains(&peer.ip())))
            .then(|| ClientKey::of(peer.ip()));
        let Some(place) = registry.admit(client, stage.clone(), &admission) else {
            // Closed at once: this client holds its share, or the server
            // is full of connections that are all busy.
            tracing::debug!("refused a connection: no place for it");
            drop(stream);
            continue;
        };
        let far = Instant::now() + Duration::from_secs(86_400);
        let io = Guarded {
            io: stream,
            stage: stage.clone(),
            timeouts,
            registry: registry.clone(),
            admission: admission.clone(),
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            write_timer: Box::pin(tokio::time::sleep_until(far)),
            write_waiting: None,
        };
        let service = Service {
            inner: service.clone(),
            stage,
            peer,
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            // The socket wrapper times heads and idle waits.
            .header_read_timeout(None)
            .max_buf_size(64 * 1024)
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("connection from {peer} ended: {error}");
            }
            drop(place);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
