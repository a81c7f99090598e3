//! A thin tokio driver around the sans-IO [`Session`]: one task per TCP
//! connection moves bytes, time and commands in and events out. Bundles are
//! opaque byte vectors.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::budget::ReceiveBudget;
use super::codec::{SessTermReason, XferRefuseReason};
use super::session::{
    ConfigError, Event, PeerInfo, Role, SendError, Session, SessionConfig, SessionError,
};

/// Bytes of encoded output buffered ahead of the socket.
const OUT_HIGH_WATER: usize = 256 * 1024;
/// Control messages (acknowledgements above all) queued behind the output
/// buffer at which reading stops, so that a peer sending segments without
/// reading the answers cannot make them grow without bound. Unlike a pause for
/// storage, the idle timeout keeps running, so such a peer is cut off.
const CONTROL_HIGH_WATER: usize = 64 * 1024;
/// How long a closed session may take to flush its last messages.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Options for [`TcpclSession::connect_with`] and [`TcpclSession::accept_with`].
#[derive(Debug, Clone)]
pub struct TcpclOptions {
    pub session: SessionConfig,
    /// Time allowed for the TCP connect.
    pub connect_timeout: Duration,
    /// Received bundles handed over but not yet acknowledged: at this many,
    /// the driver stops reading from the peer until some are settled.
    pub max_unacked_received: usize,
    /// Shared with other sessions: bounds the bytes of incoming bundles they
    /// hold together (none: each session is bounded by its transfer MRU only).
    pub receive_budget: Option<Arc<ReceiveBudget>>,
}

impl TcpclOptions {
    pub fn new(local_node_id: impl Into<String>) -> Self {
        TcpclOptions {
            session: SessionConfig::new(local_node_id),
            connect_timeout: Duration::from_secs(10),
            max_unacked_received: 16,
            receive_budget: None,
        }
    }
}

/// What can go wrong with a TCPCL session.
#[derive(Debug, Clone, Error)]
pub enum TcpclError {
    #[error("invalid TCPCL configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("TCP connection failed: {0}")]
    Io(Arc<io::Error>),
    #[error("TCP connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("TCPCL session failed: {0}")]
    Session(#[from] SessionError),
    #[error("the TCPCL session is closed")]
    Closed,
    #[error("cannot send the bundle: {0}")]
    Send(#[from] SendError),
    #[error("the peer refused the bundle ({0})")]
    Refused(XferRefuseReason),
    #[error("the session ended before the peer acknowledged the bundle")]
    NotAcknowledged,
}

impl From<io::Error> for TcpclError {
    fn from(e: io::Error) -> Self {
        TcpclError::Io(Arc::new(e))
    }
}

enum Command {
    Send {
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), TcpclError>>,
    },
    Ack {
        transfer_id: u64,
    },
    Refuse {
        transfer_id: u64,
        reason: XferRefuseReason,
    },
    Close {
        reason: SessTermReason,
    },
}

/// How the session ended: `None` while it runs.
type Outcome = Option<Result<(), SessionError>>;

/// A bundle received from the peer. Its transfer is acknowledged only through
/// the [`AckHandle`]: store the bytes durably first, then call
/// [`AckHandle::ack`].
pub struct ReceivedBundle {
    data: Vec<u8>,
    ack: AckHandle,
}

impl ReceivedBundle {
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn transfer_id(&self) -> u64 {
        self.ack.transfer_id
    }

    pub fn into_parts(self) -> (Vec<u8>, AckHandle) {
        (self.data, self.ack)
    }
}

/// Settles one received transfer. Dropped unsettled, it refuses the transfer
/// with reason "retransmit", so the peer keeps its copy.
pub struct AckHandle {
    transfer_id: u64,
    cmd: mpsc::UnboundedSender<Command>,
    settled: bool,
}

impl AckHandle {
    pub fn transfer_id(&self) -> u64 {
        self.transfer_id
    }

    /// Sends the final XFER_ACK: the bundle is durably stored.
    pub fn ack(mut self) {
        self.settled = true;
        let _ = self.cmd.send(Command::Ack {
            transfer_id: self.transfer_id,
        });
    }

    /// Sends XFER_REFUSE instead (e.g. the bundle is malformed or the store is
    /// full).
    pub fn refuse(mut self, reason: XferRefuseReason) {
        self.settled = true;
        let _ = self.cmd.send(Command::Refuse {
            transfer_id: self.transfer_id,
            reason,
        });
    }
}

impl Drop for AckHandle {
    fn drop(&mut self) {
        if !self.settled {
            let _ = self.cmd.send(Command::Refuse {
                transfer_id: self.transfer_id,
                reason: XferRefuseReason::RETRANSMIT,
            });
        }
    }
}

/// A cloneable handle that sends bundles on a session (see
/// [`TcpclSession::sender`]).
#[derive(Clone)]
pub struct TcpclSender {
    cmd: mpsc::UnboundedSender<Command>,
    outcome: watch::Receiver<Outcome>,
}

impl TcpclSender {
    /// Sends one bundle; resolves once the peer has acknowledged every byte.
    pub async fn send_bundle(&self, data: Vec<u8>) -> Result<(), TcpclError> {
        let (reply, rx) = oneshot::channel();
        if self.cmd.send(Command::Send { data, reply }).is_err() {
            return Err(ended(&self.outcome));
        }
        rx.await.unwrap_or_else(|_| Err(ended(&self.outcome)))
    }

    /// Starts a clean SESS_TERM exchange.
    pub fn close(&self) {
        let _ = self.cmd.send(Command::Close {
            reason: SessTermReason::UNKNOWN,
        });
    }
}

fn ended(outcome: &watch::Receiver<Outcome>) -> TcpclError {
    match &*outcome.borrow() {
        Some(Err(e)) => TcpclError::Session(e.clone()),
        _ => TcpclError::Closed,
    }
}

/// An established TCPCLv4 session over TCP (no TLS).
pub struct TcpclSession {
    sender: TcpclSender,
    incoming: mpsc::UnboundedReceiver<ReceivedBundle>,
    peer: PeerInfo,
    peer_addr: SocketAddr,
    local_addr: SocketAddr,
    close_wait: Duration,
    task: Option<JoinHandle<()>>,
}

impl TcpclSession {
    /// Connects to a TCPCL peer (e.g. `dtnd`) and establishes a session, with
    /// `local_node_id` (a URI such as `dtn://PEER_ID/`) as node id.
    pub async fn connect(
        addr: impl ToSocketAddrs,
        local_node_id: impl Into<String>,
    ) -> Result<TcpclSession, TcpclError> {
        Self::connect_with(addr, TcpclOptions::new(local_node_id)).await
    }

    pub async fn connect_with(
        addr: impl ToSocketAddrs,
        options: TcpclOptions,
    ) -> Result<TcpclSession, TcpclError> {
        options.session.validate()?;
        let stream = tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| TcpclError::ConnectTimeout(options.connect_timeout))??;
        Self::start(stream, Role::Active, options).await
    }

    /// Establishes a session on a connection accepted from a TCPCL peer.
    pub async fn accept(
        stream: TcpStream,
        local_node_id: impl Into<String>,
    ) -> Result<TcpclSession, TcpclError> {
        Self::accept_with(stream, TcpclOptions::new(local_node_id)).await
    }

    pub async fn accept_with(
        stream: TcpStream,
        options: TcpclOptions,
    ) -> Result<TcpclSession, TcpclError> {
        Self::start(stream, Role::Passive, options).await
    }

    async fn start(
        stream: TcpStream,
        role: Role,
        options: TcpclOptions,
    ) -> Result<TcpclSession, TcpclError> {
        let mut session = Session::new(role, options.session.clone(), Instant::now().into_std())?;
        if let Some(budget) = &options.receive_budget {
            session.set_receive_budget(budget.clone());
        }
        let _ = stream.set_nodelay(true);
        let peer_addr = stream.peer_addr()?;
        let local_addr = stream.local_addr()?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (est_tx, est_rx) = oneshot::channel();
        let (outcome_tx, outcome_rx) = watch::channel(None);
        let driver = Driver {
            session,
            cmds: cmd_rx,
            cmd_tx: cmd_tx.clone(),
            incoming: in_tx,
            established: Some(est_tx),
            outcome: outcome_tx,
            pending: HashMap::new(),
            max_unacked: options.max_unacked_received.max(1),
            peer_addr,
        };
        let task = tokio::spawn(driver.run(stream));
        let peer = match est_rx.await {
            Ok(Ok(peer)) => peer,
            Ok(Err(e)) => {
                let _ = task.await;
                return Err(TcpclError::Session(e));
            }
            Err(_) => return Err(TcpclError::Closed),
        };
        info!(peer = %peer.node_id, addr = %peer_addr, keepalive = peer.keepalive_secs,
            "TCPCL session established");
        Ok(TcpclSession {
            sender: TcpclSender {
                cmd: cmd_tx,
                outcome: outcome_rx,
            },
            incoming: in_rx,
            peer,
            peer_addr,
            local_addr,
            close_wait: options.session.close_timeout + FLUSH_TIMEOUT,
            task: Some(task),
        })
    }

    /// The negotiated session parameters and the peer's node id.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A cloneable handle for sending from other tasks.
    pub fn sender(&self) -> TcpclSender {
        self.sender.clone()
    }

    /// Sends one bundle; resolves once the peer has acknowledged every byte.
    pub async fn send_bundle(&self, data: Vec<u8>) -> Result<(), TcpclError> {
        self.sender.send_bundle(data).await
    }

    /// The next bundle from the peer. Acknowledge it with its [`AckHandle`]
    /// once stored. After the session ends: [`TcpclError::Closed`] (clean end)
    /// or [`TcpclError::Session`] (why it failed).
    pub async fn recv_bundle(&mut self) -> Result<ReceivedBundle, TcpclError> {
        match self.incoming.recv().await {
            Some(bundle) => Ok(bundle),
            None => Err(ended(&self.sender.outcome)),
        }
    }

    /// Ends the session with a SESS_TERM exchange (transfers under way may
    /// finish) and waits for the connection to close.
    pub async fn close(mut self) -> Result<(), TcpclError> {
        self.sender.close();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(self.close_wait, task).await.is_err() {
                abort.abort();
            }
        }
        match &*self.sender.outcome.borrow() {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(TcpclError::Session(e.clone())),
            None => Err(TcpclError::Closed),
        }
    }
}

impl Drop for TcpclSession {
    fn drop(&mut self) {
        // The driver task winds the session down on its own, bounded by the
        // close timeout.
        if self.task.is_some() {
            self.sender.close();
        }
    }
}

struct Driver {
    session: Session,
    cmds: mpsc::UnboundedReceiver<Command>,
    cmd_tx: mpsc::UnboundedSender<Command>,
    incoming: mpsc::UnboundedSender<ReceivedBundle>,
    established: Option<oneshot::Sender<Result<PeerInfo, SessionError>>>,
    outcome: watch::Sender<Outcome>,
    pending: HashMap<u64, oneshot::Sender<Result<(), TcpclError>>>,
    max_unacked: usize,
    peer_addr: SocketAddr,
}

impl Driver {
    async fn run(mut self, stream: TcpStream) {
        let (mut rd, mut wr) = stream.into_split();
        let mut rbuf = vec![0u8; 64 * 1024];
        let mut out: Vec<u8> = Vec::new();
        let mut out_pos = 0usize;
        let mut read_open = true;
        let mut reading_paused = false;
        let mut write_ok = true;
        let mut flush_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            while write_ok && out.len() - out_pos < OUT_HIGH_WATER {
                let Some(bytes) = self.session.poll_transmit(now.into_std()) else {
                    break;
                };
                if out_pos == out.len() {
                    out.clear();
                    out_pos = 0;
                }
                out.extend_from_slice(&bytes);
            }
            self.dispatch_events();
            if self.session.is_closed() {
                if out_pos == out.len() || !write_ok {
                    break;
                }
                flush_deadline.get_or_insert(now + FLUSH_TIMEOUT);
            }
            let timer = match (self.session.poll_timeout(), flush_deadline) {
                (Some(t), Some(f)) => Some(Instant::from_std(t).min(f)),
                (Some(t), None) => Some(Instant::from_std(t)),
                (None, f) => f,
            };
            let paused = self.session.unacknowledged_received() >= self.max_unacked;
            if paused != reading_paused {
                reading_paused = paused;
                if paused {
                    debug!(peer = %self.peer_addr, "TCPCL: not reading until received bundles are acknowledged");
                }
                self.session.set_reading_paused(paused, now.into_std());
            }
            let backlog = self.session.queued_control_bytes() >= CONTROL_HIGH_WATER;
            let want_read = read_open && !self.session.is_closed() && !paused && !backlog;
            let want_write = write_ok && out_pos < out.len();
            tokio::select! {
                r = rd.read(&mut rbuf), if want_read => match r {
                    Ok(0) => {
                        read_open = false;
                        self.session.handle_eof();
                    }
                    Ok(n) => self.session.handle_input(&rbuf[..n], Instant::now().into_std()),
                    Err(e) => {
                        debug!(error = %e, peer = %self.peer_addr, "TCPCL read failed");
                        read_open = false;
                        self.session.handle_eof();
                    }
                },
                w = wr.write(&out[out_pos..]), if want_write => match w {
                    Ok(n) if n > 0 => out_pos += n,
                    other => {
                        if let Err(e) = other {
                            debug!(error = %e, peer = %self.peer_addr, "TCPCL write failed");
                        }
                        write_ok = false;
                        self.session.handle_eof();
                    }
                },
                Some(cmd) = self.cmds.recv() => self.command(cmd),
                _ = tokio::time::sleep_until(timer.unwrap_or(now)), if timer.is_some() => {
                    let now = Instant::now();
                    if flush_deadline.is_some_and(|d| now >= d) {
                        warn!(peer = %self.peer_addr, "TCPCL: gave up flushing a closed session");
                        break;
                    }
                    self.session.handle_timeout(now.into_std());
                }
            }
        }
        self.dispatch_events();
        let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(TcpclError::NotAcknowledged));
        }
        if self.outcome.borrow().is_none() {
            self.outcome
                .send_replace(Some(Err(SessionError::ConnectionLost)));
        }
        if let Some(est) = self.established.take() {
            let _ = est.send(Err(SessionError::ConnectionLost));
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Send { data, reply } => match self.session.send_bundle(data) {
                Ok(transfer_id) => {
                    self.pending.insert(transfer_id, reply);
                }
                Err(e) => {
                    let err = if self.session.is_closed() {
                        ended(&self.outcome.subscribe())
                    } else {
                        TcpclError::Send(e)
                    };
                    let _ = reply.send(Err(err));
                }
            },
            Command::Ack { transfer_id } => {
                if let Err(e) = self.session.ack_transfer(transfer_id) {
                    debug!(error = %e, "TCPCL: acknowledgement not sent");
                }
            }
            Command::Refuse {
                transfer_id,
                reason,
            } => {
                if let Err(e) = self.session.refuse_transfer(transfer_id, reason) {
                    debug!(error = %e, "TCPCL: refusal not sent");
                }
            }
            Command::Close { reason } => self.session.close(reason, Instant::now().into_std()),
        }
    }

    fn dispatch_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Established(peer) => {
                    if let Some(est) = self.established.take() {
                        let _ = est.send(Ok(peer));
                    }
                }
                Event::BundleReceived { transfer_id, data } => {
                    debug!(transfer_id, len = data.len(), "TCPCL: bundle received");
                    let bundle = ReceivedBundle {
                        data,
                        ack: AckHandle {
                            transfer_id,
                            cmd: self.cmd_tx.clone(),
                            settled: false,
                        },
                    };
                    // If nobody listens any more, dropping the bundle refuses it.
                    let _ = self.incoming.send(bundle);
                }
                Event::TransferAcked { transfer_id } => {
                    if let Some(reply) = self.pending.remove(&transfer_id) {
                        let _ = reply.send(Ok(()));
                    }
                }
                Event::TransferRefused {
                    transfer_id,
                    reason,
                } => {
                    info!(transfer_id, %reason, peer = %self.peer_addr, "TCPCL: peer refused a bundle");
                    if let Some(reply) = self.pending.remove(&transfer_id) {
                        let _ = reply.send(Err(TcpclError::Refused(reason)));
                    }
                }
                Event::TransferFailed { transfer_id } => {
                    if let Some(reply) = self.pending.remove(&transfer_id) {
                        let _ = reply.send(Err(TcpclError::NotAcknowledged));
                    }
                }
                Event::Terminating { reason, by_peer } => {
                    debug!(%reason, by_peer, peer = %self.peer_addr, "TCPCL session terminating");
                }
                Event::Closed(error) => {
                    match &error {
                        None => debug!(peer = %self.peer_addr, "TCPCL session closed"),
                        // The owner hears why from `recv_bundle`; a warning per
                        // session would let a peer fill the log by reconnecting.
                        Some(e) => {
                            debug!(error = %e, peer = %self.peer_addr, "TCPCL session ended")
                        }
                    }
                    if let Some(est) = self.established.take() {
                        let _ =
                            est.send(Err(error.clone().unwrap_or(SessionError::ConnectionLost)));
                    }
                    self.outcome.send_replace(Some(match error {
                        None => Ok(()),
                        Some(e) => Err(e),
                    }));
                }
            }
        }
    }
}
