//! The TCPCL codec and session state machine, compiled from ferry-net's own
//! source files. Both are sans-IO and need only `thiserror` and `tracing`;
//! depending on ferry-net instead would build the whole libp2p stack (QUIC,
//! TLS and its C crypto library) for them, many minutes more per build.
//! These are the very files the node runs, not copies.

#[path = "../../crates/net/src/tcpcl/budget.rs"]
pub mod budget;
#[path = "../../crates/net/src/tcpcl/codec.rs"]
pub mod codec;
#[path = "../../crates/net/src/tcpcl/session.rs"]
pub mod session;
