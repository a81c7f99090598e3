//! A TCPCLv4 (RFC 9174) convergence layer, so that ferry exchanges bundles
//! with other DTN implementations (tested against dtn7-rs's `dtnd`).
//!
//! - [`codec`]: sans-IO encoding and decoding of the contact header and the
//!   session messages, with strict limits.
//! - [`session`]: the sans-IO session state machine (negotiation,
//!   segmentation, reassembly, acknowledgements, keepalives), fed a clock.
//! - [`TcpclSession`]: a thin tokio driver exchanging bundles as opaque bytes.
//! - [`ReceiveBudget`]: one bound on the bytes of incoming bundles held across
//!   every session of a node.
//!
//! No TLS: ferry never sets CAN_TLS (nor does `dtnd`). No session or transfer
//! extensions are sent; unknown non-critical ones received are ignored.

mod budget;
pub mod codec;
mod driver;
pub mod session;

pub use budget::ReceiveBudget;
pub use driver::{AckHandle, ReceivedBundle, TcpclError, TcpclOptions, TcpclSender, TcpclSession};
pub use session::{PeerInfo, SessionConfig, node_id_for};
