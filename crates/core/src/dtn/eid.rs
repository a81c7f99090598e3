//! Endpoint ids (RFC 9171 §4.2.5.1) and node ids.
//!
//! ferry names a node's endpoints `dtn://PEER_ID/SERVICE`, where `PEER_ID` is the
//! node's libp2p peer id (base58, which is a valid URI `reg-name`), so a bundle's
//! source says which key sent it and a destination says which key may read it. Other
//! DTN implementations name nodes freely: dtn7-rs uses `dtn://NAME/`, ION uses
//! `ipn:NODE.SERVICE`. All three are accepted here, so ferry can carry their bundles.
//!
//! Validation is strict and done once, at the edge: an [`Eid`] that exists is valid,
//! and its [`Display`](fmt::Display) form parses back to the same value. That matters
//! because ids built from it ([`BundleId`](super::BundleId)) are store keys: two
//! spellings of one endpoint would make one bundle look like two. For the same reason a
//! non-canonical form on the wire (`dtn://node` without the slash) is refused rather
//! than normalised, since re-encoding it would change the bytes other nodes hash.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::PeerId;

/// Longest endpoint id accepted, in bytes of its text form. RFC 9171 sets no limit;
/// this one bounds what a hostile bundle can make every carrier store per id.
pub const MAX_EID_LEN: usize = 1024;

/// An endpoint id: `dtn:none`, `dtn://NODE/SERVICE` or `ipn:NODE.SERVICE`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Eid(Repr);

/// Shared strings: ids are cloned into every summary, plan and table, and a
/// simulator of a thousand nodes clones them millions of times. A dtn name sits
/// behind one pointer so that every id is 24 bytes: routers keep tables of them and
/// walk those on every contact.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Repr {
    None,
    Dtn(Arc<DtnName>),
    Ipn { node: u64, service: u64 },
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Hash)]
struct DtnName {
    node: Arc<str>,
    service: Arc<str>,
}

impl Repr {
    fn dtn(node: Arc<str>, service: Arc<str>) -> Self {
        Repr::Dtn(Arc::new(DtnName { node, service }))
    }
}

/// Why a text is not an endpoint id.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum EidError {
    /// The text form is over [`MAX_EID_LEN`] bytes.
    #[error("endpoint id is longer than {MAX_EID_LEN} bytes")]
    TooLong,
    /// The text is in none of the three forms; carries it.
    #[error("{0:?} is not an endpoint id: expected dtn://NODE/SERVICE, dtn:none or ipn:N.S")]
    Syntax(String),
    /// The node part of a `dtn:` id holds a character a node name may not hold; carries
    /// it.
    #[error("{0:?} is not a valid node name (letters, digits and -._~!$&'()*+,;= or %XX)")]
    NodeName(String),
    /// The service part holds a space or a non-printable character; carries it.
    #[error("{0:?} is not a valid service name (printable ASCII, no spaces)")]
    Service(String),
    /// `ipn:0.N` with N other than 0; carries N.
    #[error("ipn:0.{0} is not a valid endpoint (node 0 is only valid as ipn:0.0)")]
    IpnNodeZero(u64),
    /// A full endpoint was given where a node id (no service part) was expected; carries
    /// it.
    #[error("{0} is an endpoint, not a node id (a node id has no service part)")]
    NotANode(String),
    /// `dtn:none` was given where a node was needed.
    #[error("dtn:none names no node")]
    NoneHasNoNode,
}

impl Eid {
    /// The null endpoint `dtn:none`.
    pub const fn none() -> Self {
        Eid(Repr::None)
    }

    /// `dtn://NODE/SERVICE`. An empty service gives the node's own id `dtn://NODE/`.
    pub fn dtn(node: &str, service: &str) -> Result<Self, EidError> {
        check_node_name(node)?;
        check_service(service)?;
        let eid = Eid(Repr::dtn(node.into(), service.into()));
        if eid.text_len() > MAX_EID_LEN {
            return Err(EidError::TooLong);
        }
        Ok(eid)
    }

    /// `ipn:NODE.SERVICE` (two-element form, as bp7 and ION use it).
    pub fn ipn(node: u64, service: u64) -> Result<Self, EidError> {
        if node == 0 && service != 0 {
            return Err(EidError::IpnNodeZero(service));
        }
        Ok(Eid(Repr::Ipn { node, service }))
    }

    /// `dtn://PEER_ID/SERVICE`: how ferry names its own endpoints.
    pub fn for_peer(peer: &PeerId, service: &str) -> Result<Self, EidError> {
        Self::dtn(&peer.to_base58(), service)
    }

    /// Whether this is the null endpoint `dtn:none`.
    pub fn is_none(&self) -> bool {
        matches!(self.0, Repr::None)
    }

    /// Whether this names a whole node (`dtn://NODE/`, `ipn:N.0`) rather than a service.
    pub fn is_node_id(&self) -> bool {
        match &self.0 {
            Repr::None => false,
            Repr::Dtn(name) => name.service.is_empty(),
            Repr::Ipn { service, .. } => *service == 0,
        }
    }

    /// The node this endpoint lives on; `None` for `dtn:none`.
    pub fn node_id(&self) -> Option<NodeId> {
        match &self.0 {
            Repr::None => None,
            Repr::Dtn(name) => Some(NodeId(Eid(Repr::dtn(name.node.clone(), "".into())))),
            Repr::Ipn { node, .. } => Some(NodeId(Eid(Repr::Ipn {
                node: *node,
                service: 0,
            }))),
        }
    }

    /// The service (demux) part: `SERVICE` of `dtn://NODE/SERVICE`, the service number
    /// of an ipn endpoint as text; empty for a node id and for `dtn:none`.
    pub fn service(&self) -> String {
        match &self.0 {
            Repr::None => String::new(),
            Repr::Dtn(name) => name.service.to_string(),
            Repr::Ipn { service: 0, .. } => String::new(),
            Repr::Ipn { service, .. } => service.to_string(),
        }
    }

    /// The libp2p peer id in the node part, when the node is a ferry node.
    pub fn peer_id(&self) -> Option<PeerId> {
        match &self.0 {
            Repr::Dtn(name) => name.node.parse().ok(),
            _ => None,
        }
    }

    /// RFC 9171 §4.2.5.1.1: a dtn service starting with `~` names a group
    /// (non-singleton endpoint) rather than one node.
    pub fn is_singleton(&self) -> bool {
        !matches!(&self.0, Repr::Dtn(name) if name.service.starts_with('~'))
    }

    fn text_len(&self) -> usize {
        match &self.0 {
            Repr::None => "dtn:none".len(),
            Repr::Dtn(name) => "dtn://".len() + name.node.len() + 1 + name.service.len(),
            Repr::Ipn { .. } => self.to_string().len(),
        }
    }

    pub(crate) fn to_bp7(&self) -> bp7::EndpointID {
        // Validated on construction with rules stricter than bp7's, so these succeed.
        match &self.0 {
            Repr::None => bp7::EndpointID::none(),
            Repr::Dtn(name) => {
                bp7::EndpointID::with_dtn(&format!("//{}/{}", name.node, name.service))
                    .unwrap_or_else(|_| bp7::EndpointID::none())
            }
            Repr::Ipn { node, service } => bp7::EndpointID::with_ipn(*node, *service)
                .unwrap_or_else(|_| bp7::EndpointID::none()),
        }
    }

    /// Reads an endpoint decoded by bp7, applying ferry's (stricter) rules.
    pub(crate) fn from_bp7(eid: &bp7::EndpointID) -> Result<Self, EidError> {
        match eid {
            bp7::EndpointID::DtnNone(..) => Ok(Self::none()),
            bp7::EndpointID::Ipn(_, addr) => Self::ipn(addr.node_number(), addr.service_number()),
            bp7::EndpointID::Dtn(..) => eid.to_string().parse(),
        }
    }
}

impl fmt::Display for Eid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::None => f.write_str("dtn:none"),
            Repr::Dtn(name) => write!(f, "dtn://{}/{}", name.node, name.service),
            Repr::Ipn { node, service } => write!(f, "ipn:{node}.{service}"),
        }
    }
}

impl fmt::Debug for Eid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Eid({self})")
    }
}

impl FromStr for Eid {
    type Err = EidError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_EID_LEN {
            return Err(EidError::TooLong);
        }
        let syntax = || EidError::Syntax(text.to_owned());
        if text == "dtn:none" {
            return Ok(Self::none());
        }
        if let Some(rest) = text.strip_prefix("dtn://") {
            // The first slash ends the node name; everything after it is the service,
            // slashes included (a demux is any run of visible characters).
            let (node, service) = rest.split_once('/').ok_or_else(syntax)?;
            if node == "none" && service.is_empty() {
                // bp7 refuses this too: the null endpoint is spelled dtn:none.
                return Err(syntax());
            }
            return Self::dtn(node, service);
        }
        if let Some(rest) = text.strip_prefix("ipn:") {
            let (node, service) = rest.split_once('.').ok_or_else(syntax)?;
            let node = canonical_u64(node).ok_or_else(syntax)?;
            let service = canonical_u64(service).ok_or_else(syntax)?;
            return Self::ipn(node, service);
        }
        Err(syntax())
    }
}

impl TryFrom<String> for Eid {
    type Error = EidError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Eid> for String {
    fn from(eid: Eid) -> Self {
        eid.to_string()
    }
}

/// A node: the endpoint id of a whole node, `dtn://NODE/` or `ipn:N.0`. Routing works
/// per node (a bundle for `dtn://X/chat` and one for `dtn://X/files` take the same way),
/// so this is the key of contacts, predictabilities and destinations.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(Eid);

impl NodeId {
    /// `dtn://NAME/`, the form dtn7-rs gives its nodes (`dtnd -n NAME`).
    pub fn dtn(name: &str) -> Result<Self, EidError> {
        Ok(NodeId(Eid::dtn(name, "")?))
    }

    /// `dtn://PEER_ID/`: a ferry node.
    pub fn from_peer(peer: &PeerId) -> Self {
        // A base58 peer id is always a valid node name.
        Self::dtn(&peer.to_base58()).expect("a peer id is a valid node name")
    }

    /// The peer id in the node name, when this is a ferry node.
    pub fn peer_id(&self) -> Option<PeerId> {
        self.0.peer_id()
    }

    /// The endpoint `SERVICE` on this node (`dtn://NODE/SERVICE`; for ipn, a number).
    pub fn endpoint(&self, service: &str) -> Result<Eid, EidError> {
        match &self.0.0 {
            Repr::Dtn(name) => Eid::dtn(&name.node, service),
            Repr::Ipn { node, .. } => {
                let number =
                    canonical_u64(service).ok_or_else(|| EidError::Service(service.to_owned()))?;
                Eid::ipn(*node, number)
            }
            Repr::None => Err(EidError::NoneHasNoNode),
        }
    }

    /// The node id as an endpoint id (`dtn://NODE/`, or `ipn:N.0`).
    pub fn as_eid(&self) -> &Eid {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// Accepts a node id (`dtn://NAME/`, `ipn:N.0`) or a bare name (`NAME`, e.g. a peer
/// id as a person types it), which means `dtn://NAME/`.
impl FromStr for NodeId {
    type Err = EidError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if !text.contains(':') {
            return Self::dtn(text);
        }
        let eid: Eid = text.parse()?;
        if eid.is_none() {
            return Err(EidError::NoneHasNoNode);
        }
        if !eid.is_node_id() {
            return Err(EidError::NotANode(text.to_owned()));
        }
        Ok(NodeId(eid))
    }
}

impl TryFrom<String> for NodeId {
    type Error = EidError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<NodeId> for String {
    fn from(node: NodeId) -> Self {
        node.to_string()
    }
}

impl From<NodeId> for Eid {
    fn from(node: NodeId) -> Self {
        node.0
    }
}

/// RFC 3986 `reg-name`, non-empty: unreserved / sub-delims / pct-encoded.
fn check_node_name(node: &str) -> Result<(), EidError> {
    let bad = || EidError::NodeName(node.to_owned());
    if node.is_empty() || node.len() > MAX_EID_LEN {
        return Err(bad());
    }
    let bytes = node.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad());
            }
            i += 3;
            continue;
        }
        let ok = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b);
        if !ok {
            return Err(bad());
        }
        i += 1;
    }
    Ok(())
}

/// RFC 9171 `demux = *VCHAR`: visible ASCII, no spaces or controls.
fn check_service(service: &str) -> Result<(), EidError> {
    if service.len() > MAX_EID_LEN || !service.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(EidError::Service(service.to_owned()));
    }
    Ok(())
}

/// A decimal number in its one canonical spelling (no sign, no leading zeros), so that
/// each value has exactly one text form.
pub(crate) fn canonical_u64(text: &str) -> Option<u64> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;
    use proptest::prelude::*;

    #[test]
    fn ferry_and_dtn7_forms_parse_and_print_back() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let text = format!("dtn://{peer}/chat");
        let eid: Eid = text.parse().unwrap();
        assert_eq!(eid.to_string(), text);
        assert_eq!(eid.peer_id(), Some(peer));
        assert_eq!(eid.service(), "chat");
        assert_eq!(eid.node_id().unwrap(), NodeId::from_peer(&peer));
        assert_eq!(Eid::for_peer(&peer, "chat").unwrap(), eid);

        let node: Eid = "dtn://beta/".parse().unwrap();
        assert!(node.is_node_id());
        assert_eq!(node.node_id().unwrap().to_string(), "dtn://beta/");
        let inbox: Eid = "dtn://beta/incoming".parse().unwrap();
        assert_eq!(inbox.node_id(), node.node_id());
        assert!(!"dtn://group/~news".parse::<Eid>().unwrap().is_singleton());

        assert_eq!("dtn:none".parse::<Eid>().unwrap(), Eid::none());
        let ipn: Eid = "ipn:23.42".parse().unwrap();
        assert_eq!(ipn.node_id().unwrap().to_string(), "ipn:23.0");
        assert_eq!(ipn.service(), "42");
    }

    #[test]
    fn malformed_eids_are_refused_with_a_reason() {
        for bad in [
            "",
            "dtn:",
            "dtn://",
            "dtn://beta",      // no slash after the node: not canonical
            "dtn:///svc",      // empty node
            "dtn://none/",     // the null endpoint is dtn:none
            "dtn://be ta/x",   // space in node
            "dtn://beta/a b",  // space in service
            "dtn://be%zzta/x", // bad percent escape
            "dtn://be/ta\u{e9}",
            "http://beta/",
            "ipn:1",
            "ipn:01.2",
            "ipn:+1.2",
            "ipn:0.5",
            "ipn:1.-2",
        ] {
            assert!(bad.parse::<Eid>().is_err(), "{bad:?} should be refused");
        }
        let long = format!("dtn://n/{}", "x".repeat(MAX_EID_LEN));
        assert_eq!(long.parse::<Eid>(), Err(EidError::TooLong));
    }

    #[test]
    fn node_ids_accept_bare_names_and_refuse_services() {
        assert_eq!(
            "beta".parse::<NodeId>().unwrap(),
            NodeId::dtn("beta").unwrap()
        );
        assert_eq!(
            "dtn://beta/".parse::<NodeId>().unwrap().to_string(),
            "dtn://beta/"
        );
        assert!(matches!(
            "dtn://beta/in".parse::<NodeId>(),
            Err(EidError::NotANode(_))
        ));
        assert!("dtn:none".parse::<NodeId>().is_err());
        let node = NodeId::dtn("beta").unwrap();
        assert_eq!(node.endpoint("in").unwrap().to_string(), "dtn://beta/in");
        assert_eq!(String::from(node), "dtn://beta/");
    }

    #[test]
    fn bp7_round_trip_keeps_the_text() {
        for text in ["dtn://beta/incoming", "dtn://a/", "ipn:7.3", "dtn:none"] {
            let eid: Eid = text.parse().unwrap();
            let back = Eid::from_bp7(&eid.to_bp7()).unwrap();
            assert_eq!(back, eid);
            if !eid.is_none() {
                assert_eq!(eid.to_bp7().to_string(), text);
            }
        }
    }

    #[test]
    fn ids_are_three_words() {
        assert_eq!(std::mem::size_of::<Eid>(), 24);
        assert_eq!(std::mem::size_of::<NodeId>(), 24);
    }

    proptest! {
        /// The order sorts by scheme (dtn before ipn), then node, then service, as
        /// the fields of the text form.
        #[test]
        fn the_order_is_scheme_node_service(
            a in (0u8..3, "[a-c]{1,3}", "[a-c]{0,2}", 1u64..4, 0u64..3),
            b in (0u8..3, "[a-c]{1,3}", "[a-c]{0,2}", 1u64..4, 0u64..3),
        ) {
            let make = |(kind, node, service, n, s): &(u8, String, String, u64, u64)| match kind {
                0 => (Eid::none(), (0, String::new(), String::new(), 0, 0)),
                1 => (Eid::dtn(node, service).unwrap(), (1, node.clone(), service.clone(), 0, 0)),
                _ => (Eid::ipn(*n, *s).unwrap(), (2, String::new(), String::new(), *n, *s)),
            };
            let ((x, kx), (y, ky)) = (make(&a), make(&b));
            prop_assert_eq!(x.cmp(&y), kx.cmp(&ky));
            prop_assert_eq!(x == y, kx == ky);
        }

        #[test]
        fn any_text_parses_or_errs_and_valid_ones_round_trip(text in "\\PC{0,40}") {
            if let Ok(eid) = text.parse::<Eid>() {
                prop_assert_eq!(eid.to_string().parse::<Eid>().unwrap(), eid);
            }
        }

        #[test]
        fn generated_dtn_eids_round_trip(
            node in "[A-Za-z0-9._~-]{1,20}",
            service in "[!-~]{0,20}",
        ) {
            let eid = Eid::dtn(&node, &service).unwrap();
            prop_assert_eq!(eid.to_string().parse::<Eid>().unwrap(), eid.clone());
            prop_assert_eq!(Eid::from_bp7(&eid.to_bp7()).unwrap(), eid);
        }
    }
}
