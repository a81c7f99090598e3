//! Sans-IO encoding and decoding of TCPCLv4 (RFC 9174) wire data: the contact
//! header and the seven session messages.
//!
//! Decoding works on a byte slice that may hold a partial message: it returns
//! `Ok(None)` when more bytes are needed, `Ok(Some((message, consumed)))` when a
//! whole message is there, and an error as soon as the bytes cannot be valid.
//! Length fields are checked against [`Limits`] before any data is awaited or
//! allocated, so a peer cannot make the decoder hold more than one message of
//! at most `max_segment_len` bytes plus headers. Nothing here panics on any input.

use std::fmt;

use thiserror::Error;

/// The magic that opens a contact header.
pub const MAGIC: [u8; 4] = *b"dtn!";
/// The protocol version this module speaks.
pub const VERSION: u8 = 4;
/// Bytes in a contact header: magic, version, flags.
pub const CONTACT_HEADER_LEN: usize = 6;

/// Bytes in an extension item before its value: flags, type, length.
const EXTENSION_ITEM_HEADER_LEN: usize = 5;

/// Message type codes (RFC 9174 section 9.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    XferSegment = 0x01,
    XferAck = 0x02,
    XferRefuse = 0x03,
    Keepalive = 0x04,
    SessTerm = 0x05,
    MsgReject = 0x06,
    SessInit = 0x07,
}

impl MessageType {
    pub fn from_u8(code: u8) -> Option<Self> {
        Some(match code {
            0x01 => Self::XferSegment,
            0x02 => Self::XferAck,
            0x03 => Self::XferRefuse,
            0x04 => Self::Keepalive,
            0x05 => Self::SessTerm,
            0x06 => Self::MsgReject,
            0x07 => Self::SessInit,
            _ => return None,
        })
    }
}

/// The contact header each side sends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContactHeader {
    /// Raw flags; only [`ContactHeader::CAN_TLS`] is defined.
    pub flags: u8,
}

impl ContactHeader {
    pub const CAN_TLS: u8 = 0x01;

    pub fn can_tls(&self) -> bool {
        self.flags & Self::CAN_TLS != 0
    }

    pub fn encode(&self) -> [u8; CONTACT_HEADER_LEN] {
        let [a, b, c, d] = MAGIC;
        [a, b, c, d, VERSION, self.flags]
    }

    /// Decodes a contact header from the start of `buf`. A wrong magic is
    /// reported as soon as the first differing byte is there; a version other
    /// than 4 is [`DecodeError::UnsupportedVersion`].
    pub fn decode(buf: &[u8]) -> Result<Option<ContactHeader>, DecodeError> {
        let have = buf.len().min(MAGIC.len());
        if buf[..have] != MAGIC[..have] {
            return Err(DecodeError::BadMagic);
        }
        if buf.len() < CONTACT_HEADER_LEN {
            return Ok(None);
        }
        if buf[4] != VERSION {
            return Err(DecodeError::UnsupportedVersion(buf[4]));
        }
        Ok(Some(ContactHeader { flags: buf[5] }))
    }
}

/// Flags of XFER_SEGMENT and XFER_ACK.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SegmentFlags(pub u8);

impl SegmentFlags {
    pub const END: SegmentFlags = SegmentFlags(0x01);
    pub const START: SegmentFlags = SegmentFlags(0x02);
    pub const NONE: SegmentFlags = SegmentFlags(0);

    pub fn is_start(self) -> bool {
        self.0 & Self::START.0 != 0
    }
    pub fn is_end(self) -> bool {
        self.0 & Self::END.0 != 0
    }
    pub fn with(self, other: SegmentFlags) -> SegmentFlags {
        SegmentFlags(self.0 | other.0)
    }
}

impl fmt::Debug for SegmentFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentFlags(")?;
        let mut first = true;
        for (set, name) in [(self.is_start(), "START"), (self.is_end(), "END")] {
            if set {
                if !first {
                    write!(f, "|")?;
                }
                write!(f, "{name}")?;
                first = false;
            }
        }
        let other = self.0 & !(Self::START.0 | Self::END.0);
        if other != 0 {
            if !first {
                write!(f, "|")?;
            }
            write!(f, "{other:#04x}")?;
        }
        write!(f, ")")
    }
}

/// Defines a newtype over a one-byte reason code with named constants, so
/// that codes unknown to this implementation survive a decode/encode trip.
macro_rules! reason_code {
    ($(#[$meta:meta])* $name:ident { $($(#[$cmeta:meta])* $konst:ident = $value:expr => $text:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub u8);

        impl $name {
            $($(#[$cmeta])* pub const $konst: $name = $name($value);)*

            /// The code's name in RFC 9174, if it has one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{}({})", stringify!($name), name),
                    None => write!(f, "{}({:#04x})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "unassigned code {:#04x}", self.0),
                }
            }
        }
    };
}

reason_code!(
    /// XFER_REFUSE reason codes (RFC 9174 section 5.2.4).
    XferRefuseReason {
        UNKNOWN = 0x00 => "unknown",
        /// The receiver already has the whole bundle.
        COMPLETED = 0x01 => "completed",
        NO_RESOURCES = 0x02 => "no resources",
        RETRANSMIT = 0x03 => "retransmit",
        NOT_ACCEPTABLE = 0x04 => "not acceptable",
        EXTENSION_FAILURE = 0x05 => "extension failure",
        /// dtn7-rs 0.21 does not know this code and ends the session on it.
        SESSION_TERMINATING = 0x06 => "session terminating",
    }
);

reason_code!(
    /// SESS_TERM reason codes (RFC 9174 section 6.1).
    SessTermReason {
        UNKNOWN = 0x00 => "unknown",
        IDLE_TIMEOUT = 0x01 => "idle timeout",
        VERSION_MISMATCH = 0x02 => "version mismatch",
        BUSY = 0x03 => "busy",
        CONTACT_FAILURE = 0x04 => "contact failure",
        RESOURCE_EXHAUSTION = 0x05 => "resource exhaustion",
    }
);

reason_code!(
    /// MSG_REJECT reason codes (RFC 9174 section 5.1.1).
    MsgRejectReason {
        TYPE_UNKNOWN = 0x01 => "message type unknown",
        UNSUPPORTED = 0x02 => "message unsupported",
        UNEXPECTED = 0x03 => "message unexpected",
    }
);

/// A session or transfer extension item (RFC 9174 sections 4.8 and 5.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionItem {
    /// Raw flags; only [`ExtensionItem::CRITICAL`] is defined.
    pub flags: u8,
    pub item_type: u16,
    pub value: Vec<u8>,
}

impl ExtensionItem {
    pub const CRITICAL: u8 = 0x01;
    /// The Transfer Length transfer extension (RFC 9174 section 5.2.5.1).
    /// dtn7-rs uses the same type number for its own bundle-id item.
    pub const TRANSFER_LENGTH: u16 = 0x0001;

    pub fn is_critical(&self) -> bool {
        self.flags & Self::CRITICAL != 0
    }

    /// The announced total length, if this is a well-formed Transfer Length item.
    pub fn transfer_length(&self) -> Option<u64> {
        if self.item_type != Self::TRANSFER_LENGTH {
            return None;
        }
        let bytes: [u8; 8] = self.value.as_slice().try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    }
}

/// SESS_INIT (RFC 9174 section 4.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessInit {
    /// Keepalive interval in seconds; 0 disables keepalives.
    pub keepalive: u16,
    /// Largest segment payload the sender of this message accepts.
    pub segment_mru: u64,
    /// Largest whole transfer the sender of this message accepts.
    pub transfer_mru: u64,
    pub node_id: String,
    pub extensions: Vec<ExtensionItem>,
}

/// XFER_SEGMENT (RFC 9174 section 5.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XferSegment {
    pub flags: SegmentFlags,
    pub transfer_id: u64,
    /// Transfer extension items; only present on a START segment.
    pub extensions: Vec<ExtensionItem>,
    pub data: Vec<u8>,
}

/// XFER_ACK (RFC 9174 section 5.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XferAck {
    pub flags: SegmentFlags,
    pub transfer_id: u64,
    /// Total bytes of the transfer received so far.
    pub acknowledged_len: u64,
}

/// XFER_REFUSE (RFC 9174 section 5.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XferRefuse {
    pub reason: XferRefuseReason,
    pub transfer_id: u64,
}

/// SESS_TERM (RFC 9174 section 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessTerm {
    /// Raw flags; only [`SessTerm::REPLY`] is defined.
    pub flags: u8,
    pub reason: SessTermReason,
}

impl SessTerm {
    pub const REPLY: u8 = 0x01;

    pub fn is_reply(&self) -> bool {
        self.flags & Self::REPLY != 0
    }
}

/// MSG_REJECT (RFC 9174 section 5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgReject {
    pub reason: MsgRejectReason,
    /// The message type code of the rejected message.
    pub rejected_header: u8,
}

/// A TCPCLv4 session message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    SessInit(SessInit),
    XferSegment(XferSegment),
    XferAck(XferAck),
    XferRefuse(XferRefuse),
    Keepalive,
    SessTerm(SessTerm),
    MsgReject(MsgReject),
}

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::SessInit(_) => MessageType::SessInit,
            Message::XferSegment(_) => MessageType::XferSegment,
            Message::XferAck(_) => MessageType::XferAck,
            Message::XferRefuse(_) => MessageType::XferRefuse,
            Message::Keepalive => MessageType::Keepalive,
            Message::SessTerm(_) => MessageType::SessTerm,
            Message::MsgReject(_) => MessageType::MsgReject,
        }
    }

    /// Appends the wire form of this message to `out`. On error nothing is
    /// appended.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let result = self.encode_inner(out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_inner(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.message_type() as u8);
        match self {
            Message::SessInit(m) => {
                out.extend_from_slice(&m.keepalive.to_be_bytes());
                out.extend_from_slice(&m.segment_mru.to_be_bytes());
                out.extend_from_slice(&m.transfer_mru.to_be_bytes());
                let id_len =
                    u16::try_from(m.node_id.len()).map_err(|_| EncodeError::NodeIdTooLong)?;
                out.extend_from_slice(&id_len.to_be_bytes());
                out.extend_from_slice(m.node_id.as_bytes());
                encode_extensions(&m.extensions, out)?;
            }
            Message::XferSegment(m) => {
                if !m.flags.is_start() && !m.extensions.is_empty() {
                    return Err(EncodeError::ExtensionsWithoutStart);
                }
                out.push(m.flags.0);
                out.extend_from_slice(&m.transfer_id.to_be_bytes());
                if m.flags.is_start() {
                    encode_extensions(&m.extensions, out)?;
                }
                out.extend_from_slice(&(m.data.len() as u64).to_be_bytes());
                out.extend_from_slice(&m.data);
            }
            Message::XferAck(m) => {
                out.push(m.flags.0);
                out.extend_from_slice(&m.transfer_id.to_be_bytes());
                out.extend_from_slice(&m.acknowledged_len.to_be_bytes());
            }
            Message::XferRefuse(m) => {
                out.push(m.reason.0);
                out.extend_from_slice(&m.transfer_id.to_be_bytes());
            }
            Message::Keepalive => {}
            Message::SessTerm(m) => {
                out.push(m.flags);
                out.push(m.reason.0);
            }
            Message::MsgReject(m) => {
                out.push(m.reason.0);
                out.push(m.rejected_header);
            }
        }
        Ok(())
    }

    /// Decodes one message from the start of `buf`; see the module docs.
    pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Message, usize)>, DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        match decode_message(&mut r, limits) {
            Ok(message) => Ok(Some((message, r.pos))),
            Err(Fail::Incomplete) => Ok(None),
            Err(Fail::Bad(e)) => Err(e),
        }
    }
}

/// Appends the header of a non-START XFER_SEGMENT or of a START segment
/// without extensions; the caller appends `data_len` bytes of data.
pub fn encode_segment_header(
    flags: SegmentFlags,
    transfer_id: u64,
    data_len: u64,
    out: &mut Vec<u8>,
) {
    out.push(MessageType::XferSegment as u8);
    out.push(flags.0);
    out.extend_from_slice(&transfer_id.to_be_bytes());
    if flags.is_start() {
        out.extend_from_slice(&0u32.to_be_bytes());
    }
    out.extend_from_slice(&data_len.to_be_bytes());
}

fn encode_extensions(items: &[ExtensionItem], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let total: usize = items
        .iter()
        .map(|i| EXTENSION_ITEM_HEADER_LEN + i.value.len())
        .sum();
    let total = u32::try_from(total).map_err(|_| EncodeError::ExtensionsTooLong)?;
    out.extend_from_slice(&total.to_be_bytes());
    for item in items {
        let len = u16::try_from(item.value.len()).map_err(|_| EncodeError::ExtensionsTooLong)?;
        out.push(item.flags);
        out.extend_from_slice(&item.item_type.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&item.value);
    }
    Ok(())
}

/// Bounds applied while decoding what a peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest XFER_SEGMENT data accepted (the local segment MRU).
    pub max_segment_len: u64,
    /// Largest total of extension items in one SESS_INIT or XFER_SEGMENT.
    pub max_extensions_len: u32,
    /// Largest node id in SESS_INIT, in bytes.
    pub max_node_id_len: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_segment_len: 256 * 1024,
            max_extensions_len: 4096,
            max_node_id_len: 1024,
        }
    }
}

/// Why bytes from a peer are not valid TCPCLv4.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("contact header does not start with \"dtn!\" (not a TCPCL peer)")]
    BadMagic,
    #[error("contact header announces TCPCL version {0}, only version 4 is supported")]
    UnsupportedVersion(u8),
    #[error("unknown message type {0:#04x}")]
    UnknownMessageType(u8),
    #[error("XFER_SEGMENT of {len} bytes exceeds the segment MRU of {max} bytes")]
    SegmentTooLong { len: u64, max: u64 },
    #[error("extension items of {len} bytes exceed the limit of {max} bytes")]
    ExtensionsTooLong { len: u32, max: u32 },
    #[error("node id of {len} bytes exceeds the limit of {max} bytes")]
    NodeIdTooLong { len: u16, max: u16 },
    #[error("node id is not valid UTF-8")]
    NodeIdNotUtf8,
    #[error("extension item overruns its list ({0} bytes left over)")]
    MalformedExtensions(usize),
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("node id longer than 65535 bytes")]
    NodeIdTooLong,
    #[error("extension items too long for their length field")]
    ExtensionsTooLong,
    #[error("transfer extensions are only carried on a START segment")]
    ExtensionsWithoutStart,
}

enum Fail {
    Incomplete,
    Bad(DecodeError),
}

impl From<DecodeError> for Fail {
    fn from(e: DecodeError) -> Self {
        Fail::Bad(e)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        let end = self.pos.checked_add(n).ok_or(Fail::Incomplete)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Fail::Incomplete)?;
        self.pos = end;
        Ok(bytes)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Fail> {
        let bytes = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(bytes);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Fail> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, Fail> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, Fail> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, Fail> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

fn decode_message(r: &mut Reader<'_>, limits: &Limits) -> Result<Message, Fail> {
    let code = r.u8()?;
    let Some(kind) = MessageType::from_u8(code) else {
        return Err(DecodeError::UnknownMessageType(code).into());
    };
    Ok(match kind {
        MessageType::SessInit => {
            let keepalive = r.u16()?;
            let segment_mru = r.u64()?;
            let transfer_mru = r.u64()?;
            let id_len = r.u16()?;
            if id_len > limits.max_node_id_len {
                return Err(DecodeError::NodeIdTooLong {
                    len: id_len,
                    max: limits.max_node_id_len,
                }
                .into());
            }
            let id = r.take(usize::from(id_len))?;
            let node_id = std::str::from_utf8(id)
                .map_err(|_| DecodeError::NodeIdNotUtf8)?
                .to_owned();
            let extensions = decode_extensions(r, limits)?;
            Message::SessInit(SessInit {
                keepalive,
                segment_mru,
                transfer_mru,
                node_id,
                extensions,
            })
        }
        MessageType::XferSegment => {
            let flags = SegmentFlags(r.u8()?);
            let transfer_id = r.u64()?;
            let extensions = if flags.is_start() {
                decode_extensions(r, limits)?
            } else {
                Vec::new()
            };
            let len = r.u64()?;
            if len > limits.max_segment_len {
                return Err(DecodeError::SegmentTooLong {
                    len,
                    max: limits.max_segment_len,
                }
                .into());
            }
            let len = usize::try_from(len).map_err(|_| DecodeError::SegmentTooLong {
                len,
                max: limits.max_segment_len,
            })?;
            let data = r.take(len)?.to_vec();
            Message::XferSegment(XferSegment {
                flags,
                transfer_id,
                extensions,
                data,
            })
        }
        MessageType::XferAck => Message::XferAck(XferAck {
            flags: SegmentFlags(r.u8()?),
            transfer_id: r.u64()?,
            acknowledged_len: r.u64()?,
        }),
        MessageType::XferRefuse => Message::XferRefuse(XferRefuse {
            reason: XferRefuseReason(r.u8()?),
            transfer_id: r.u64()?,
        }),
        MessageType::Keepalive => Message::Keepalive,
        MessageType::SessTerm => Message::SessTerm(SessTerm {
            flags: r.u8()?,
            reason: SessTermReason(r.u8()?),
        }),
        MessageType::MsgReject => Message::MsgReject(MsgReject {
            reason: MsgRejectReason(r.u8()?),
            rejected_header: r.u8()?,
        }),
    })
}

fn decode_extensions(r: &mut Reader<'_>, limits: &Limits) -> Result<Vec<ExtensionItem>, Fail> {
    let total = r.u32()?;
    if total > limits.max_extensions_len {
        return Err(DecodeError::ExtensionsTooLong {
            len: total,
            max: limits.max_extensions_len,
        }
        .into());
    }
    let mut list = r.take(total as usize)?;
    let mut items = Vec::new();
    while !list.is_empty() {
        if list.len() < EXTENSION_ITEM_HEADER_LEN {
            return Err(DecodeError::MalformedExtensions(list.len()).into());
        }
        let flags = list[0];
        let item_type = u16::from_be_bytes([list[1], list[2]]);
        let len = usize::from(u16::from_be_bytes([list[3], list[4]]));
        let rest = &list[EXTENSION_ITEM_HEADER_LEN..];
        let Some(value) = rest.get(..len) else {
            return Err(DecodeError::MalformedExtensions(list.len()).into());
        };
        items.push(ExtensionItem {
            flags,
            item_type,
            value: value.to_vec(),
        });
        list = &rest[len..];
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(m: &Message) {
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        let limits = Limits {
            max_segment_len: u64::MAX,
            max_extensions_len: u32::MAX,
            max_node_id_len: u16::MAX,
        };
        let (back, used) = Message::decode(&out, &limits).unwrap().unwrap();
        assert_eq!(&back, m);
        assert_eq!(used, out.len());
        // Every strict prefix is incomplete, never an error.
        for cut in 0..out.len() {
            assert_eq!(
                Message::decode(&out[..cut], &limits),
                Ok(None),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn contact_header() {
        let h = ContactHeader { flags: 0 };
        assert_eq!(&h.encode(), b"dtn!\x04\x00");
        assert_eq!(
            ContactHeader::decode(b"dtn!\x04\x01"),
            Ok(Some(ContactHeader { flags: 1 }))
        );
        assert_eq!(ContactHeader::decode(b"dt"), Ok(None));
        assert_eq!(ContactHeader::decode(b""), Ok(None));
        assert_eq!(ContactHeader::decode(b"GET /"), Err(DecodeError::BadMagic));
        assert_eq!(ContactHeader::decode(b"x"), Err(DecodeError::BadMagic));
        assert_eq!(
            ContactHeader::decode(b"dtn!\x03\x00"),
            Err(DecodeError::UnsupportedVersion(3))
        );
    }

    #[test]
    fn known_wire_forms() {
        // Bytes as dtn7-rs writes them.
        let mut out = Vec::new();
        Message::SessInit(SessInit {
            keepalive: 30,
            segment_mru: 64000,
            transfer_mru: 64000,
            node_id: "dtn://a/".into(),
            extensions: vec![],
        })
        .encode(&mut out)
        .unwrap();
        let mut want = vec![0x07, 0, 30];
        want.extend_from_slice(&64000u64.to_be_bytes());
        want.extend_from_slice(&64000u64.to_be_bytes());
        want.extend_from_slice(&[0, 8]);
        want.extend_from_slice(b"dtn://a/");
        want.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(out, want);

        let mut out = Vec::new();
        encode_segment_header(SegmentFlags::START.with(SegmentFlags::END), 7, 3, &mut out);
        out.extend_from_slice(b"abc");
        let (m, _) = Message::decode(&out, &Limits::default()).unwrap().unwrap();
        assert_eq!(
            m,
            Message::XferSegment(XferSegment {
                flags: SegmentFlags(3),
                transfer_id: 7,
                extensions: vec![],
                data: b"abc".to_vec(),
            })
        );
    }

    #[test]
    fn all_messages_roundtrip() {
        roundtrip(&Message::Keepalive);
        roundtrip(&Message::SessTerm(SessTerm {
            flags: SessTerm::REPLY,
            reason: SessTermReason::BUSY,
        }));
        roundtrip(&Message::MsgReject(MsgReject {
            reason: MsgRejectReason::UNEXPECTED,
            rejected_header: 0x07,
        }));
        roundtrip(&Message::XferRefuse(XferRefuse {
            reason: XferRefuseReason::NO_RESOURCES,
            transfer_id: u64::MAX,
        }));
        roundtrip(&Message::XferAck(XferAck {
            flags: SegmentFlags::NONE,
            transfer_id: 1,
            acknowledged_len: 64000,
        }));
        roundtrip(&Message::XferSegment(XferSegment {
            flags: SegmentFlags::START,
            transfer_id: 3,
            extensions: vec![ExtensionItem {
                flags: ExtensionItem::CRITICAL,
                item_type: ExtensionItem::TRANSFER_LENGTH,
                value: 1000u64.to_be_bytes().to_vec(),
            }],
            data: vec![1, 2, 3],
        }));
    }

    #[test]
    fn limits_are_checked_before_data_arrives() {
        let mut out = Vec::new();
        encode_segment_header(SegmentFlags::START, 1, 1 << 40, &mut out);
        assert_eq!(
            Message::decode(&out, &Limits::default()),
            Err(DecodeError::SegmentTooLong {
                len: 1 << 40,
                max: 256 * 1024
            })
        );
        let mut sess = vec![0x07, 0, 30];
        sess.extend_from_slice(&[0; 16]);
        sess.extend_from_slice(&[0xff, 0xff]);
        assert!(matches!(
            Message::decode(&sess, &Limits::default()),
            Err(DecodeError::NodeIdTooLong { .. })
        ));
        assert_eq!(
            Message::decode(&[0x09], &Limits::default()),
            Err(DecodeError::UnknownMessageType(9))
        );
        assert_eq!(
            Message::decode(b"dtn!", &Limits::default()),
            Err(DecodeError::UnknownMessageType(b'd'))
        );
    }

    #[test]
    fn malformed_extensions() {
        let mut m = vec![0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 1];
        // Three bytes of extension list: too short for one item header.
        m.extend_from_slice(&3u32.to_be_bytes());
        m.extend_from_slice(&[0, 0, 1]);
        m.extend_from_slice(&0u64.to_be_bytes());
        assert_eq!(
            Message::decode(&m, &Limits::default()),
            Err(DecodeError::MalformedExtensions(3))
        );
        // One item claiming 9 bytes of value with only 2 present.
        let mut m = vec![0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 1];
        m.extend_from_slice(&7u32.to_be_bytes());
        m.extend_from_slice(&[0, 0, 1, 0, 9, 0xaa, 0xbb]);
        m.extend_from_slice(&0u64.to_be_bytes());
        assert_eq!(
            Message::decode(&m, &Limits::default()),
            Err(DecodeError::MalformedExtensions(7))
        );
    }

    #[test]
    fn unencodable_messages_leave_output_untouched() {
        let mut out = vec![9];
        let m = Message::XferSegment(XferSegment {
            flags: SegmentFlags::END,
            transfer_id: 1,
            extensions: vec![ExtensionItem {
                flags: 0,
                item_type: 5,
                value: vec![],
            }],
            data: vec![],
        });
        assert_eq!(m.encode(&mut out), Err(EncodeError::ExtensionsWithoutStart));
        assert_eq!(out, vec![9]);
    }

    fn arb_ext() -> impl Strategy<Value = Vec<ExtensionItem>> {
        proptest::collection::vec(
            (
                any::<u8>(),
                any::<u16>(),
                proptest::collection::vec(any::<u8>(), 0..20),
            )
                .prop_map(|(flags, item_type, value)| ExtensionItem {
                    flags,
                    item_type,
                    value,
                }),
            0..3,
        )
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            Just(Message::Keepalive),
            (
                any::<u16>(),
                any::<u64>(),
                any::<u64>(),
                ".{0,40}",
                arb_ext()
            )
                .prop_map(
                    |(keepalive, segment_mru, transfer_mru, node_id, extensions)| {
                        Message::SessInit(SessInit {
                            keepalive,
                            segment_mru,
                            transfer_mru,
                            node_id,
                            extensions,
                        })
                    }
                ),
            (
                any::<u8>(),
                any::<u64>(),
                arb_ext(),
                proptest::collection::vec(any::<u8>(), 0..200)
            )
                .prop_map(|(flags, transfer_id, extensions, data)| {
                    let flags = SegmentFlags(flags);
                    let extensions = if flags.is_start() { extensions } else { vec![] };
                    Message::XferSegment(XferSegment {
                        flags,
                        transfer_id,
                        extensions,
                        data,
                    })
                }),
            (any::<u8>(), any::<u64>(), any::<u64>()).prop_map(|(f, t, l)| Message::XferAck(
                XferAck {
                    flags: SegmentFlags(f),
                    transfer_id: t,
                    acknowledged_len: l
                }
            )),
            (any::<u8>(), any::<u64>()).prop_map(|(r, t)| Message::XferRefuse(XferRefuse {
                reason: XferRefuseReason(r),
                transfer_id: t
            })),
            (any::<u8>(), any::<u8>()).prop_map(|(f, r)| Message::SessTerm(SessTerm {
                flags: f,
                reason: SessTermReason(r)
            })),
            (any::<u8>(), any::<u8>()).prop_map(|(r, h)| Message::MsgReject(MsgReject {
                reason: MsgRejectReason(r),
                rejected_header: h
            })),
        ]
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let limits = Limits { max_segment_len: 300, max_extensions_len: 64, max_node_id_len: 64 };
            let mut rest = &bytes[..];
            // Decode as many messages as the garbage yields.
            while let Ok(Some((_, used))) = Message::decode(rest, &limits) {
                prop_assert!(used > 0 && used <= rest.len());
                rest = &rest[used..];
            }
            let _ = ContactHeader::decode(&bytes);
        }

        #[test]
        fn typed_garbage_never_panics(
            kind in 1u8..=7,
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            // Garbage behind a valid type code reaches the field parsers.
            let mut m = vec![kind];
            m.extend_from_slice(&bytes);
            let limits = Limits { max_segment_len: 300, max_extensions_len: 64, max_node_id_len: 64 };
            if let Ok(Some((msg, used))) = Message::decode(&m, &limits) {
                prop_assert!(used <= m.len());
                // Whatever decodes re-encodes to the same bytes.
                let mut out = Vec::new();
                msg.encode(&mut out).unwrap();
                prop_assert_eq!(&out[..], &m[..used]);
            }
        }

        #[test]
        fn messages_roundtrip(m in arb_message()) {
            roundtrip(&m);
        }
    }
}
