//! Channels and the signed messages posted to them.
//!
//! A message is signed by its author's ed25519 key over a domain-separated
//! encoding of its body, so it can be relayed, stored and re-served by any peer
//! and still be checked by whoever reads it. Its id is the BLAKE3 hash of its
//! wire bytes, which makes de-duplication exact.
//!
//! The wire is canonical: [`Message::decode`] accepts only the exact bytes
//! [`Message::encode`] would write for what it decoded (no trailing bytes, no
//! overlong varints, the author's key in its one protobuf form, the body in its
//! one postcard form). A relay cannot change a byte of a signed message and
//! still have it accepted, so it cannot replay one message as many "new" ones
//! with different ids. The protocol is written down in `docs/protocols/channels.md`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Keypair, Millis, PeerId, PublicKey};

/// The largest message text, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// The longest channel name, in bytes.
pub const MAX_CHANNEL_NAME_BYTES: usize = 64;
/// The longest node nickname, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// The largest encoded message: the text plus room for the envelope.
pub const MAX_WIRE_BYTES: usize = MAX_TEXT_BYTES + 1024;

const SIGNING_DOMAIN: &[u8] = b"ferry/channel-message/v1\0";

/// A channel name: 1 to 64 ASCII letters, digits, '-', '_' or '.', not starting
/// with '.'. Kept narrow so a name is safe in a gossip topic, a URL path and a
/// terminal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelName(String);

impl ChannelName {
    /// The name as text, as the user typed it and as it goes on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The gossipsub topic that carries this channel.
    pub fn topic(&self) -> String {
        format!("ferry/channel/v1/{}", self.0)
    }

    /// The channel a gossipsub topic carries, if it is one of ours.
    pub fn from_topic(topic: &str) -> Option<Self> {
        topic.strip_prefix("ferry/channel/v1/")?.parse().ok()
    }
}

impl FromStr for ChannelName {
    type Err = ChannelNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if name.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        if name.len() > MAX_CHANNEL_NAME_BYTES {
            return Err(ChannelNameError::TooLong(name.len()));
        }
        if name.starts_with('.') {
            return Err(ChannelNameError::LeadingDot);
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(ChannelNameError::BadCharacter(bad));
        }
        Ok(Self(name.to_owned()))
    }
}

impl TryFrom<String> for ChannelName {
    type Error = ChannelNameError;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<ChannelName> for String {
    fn from(name: ChannelName) -> Self {
        name.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a valid channel name.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChannelNameError {
    /// The name is empty.
    #[error("a channel name cannot be empty")]
    Empty,
    /// The name is over [`MAX_CHANNEL_NAME_BYTES`]; carries its length in bytes.
    #[error("a channel name is at most {MAX_CHANNEL_NAME_BYTES} bytes; this one has {0}")]
    TooLong(usize),
    /// The name starts with '.', so no name is `.` or `..`, which mean something else in
    /// a URL path.
    #[error("a channel name cannot start with '.'")]
    LeadingDot,
    /// The name holds a character outside ASCII letters, digits, '-', '_' and '.';
    /// carries the first one found.
    #[error("a channel name may only hold ASCII letters, digits, '-', '_' and '.'; found {0:?}")]
    BadCharacter(char),
}

/// A message's id: the BLAKE3 hash of its wire bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(pub [u8; 32]);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", &hex::encode(self.0)[..12])
    }
}

#[derive(Serialize, Deserialize)]
struct Body {
    channel: ChannelName,
    author_name: String,
    timestamp_ms: Millis,
    text: String,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    author_key: Vec<u8>,
    body: Vec<u8>,
    signature: Vec<u8>,
}

/// A channel message whose signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The BLAKE3 hash of the message's wire bytes, computed on receipt (never taken from
    /// the sender).
    pub id: MessageId,
    /// Who wrote and signed the message: the peer id of the signing key.
    pub author: PeerId,
    /// The nickname the author gave when posting (chosen by the author, checked for
    /// length and control characters, not unique).
    pub author_name: String,
    /// The channel the message was posted to, covered by the signature.
    pub channel: ChannelName,
    /// When the author posted it, by the author's clock (ms since the Unix epoch).
    pub timestamp_ms: Millis,
    /// The message text as the author wrote it, at most [`MAX_TEXT_BYTES`].
    pub text: String,
    author_key: PublicKey,
    signature: Vec<u8>,
    /// The canonical encoding, kept so that relaying and storing need no re-encoding.
    wire: Vec<u8>,
}

impl Message {
    /// Writes and signs a new message.
    pub fn sign(
        keypair: &Keypair,
        channel: ChannelName,
        author_name: &str,
        timestamp_ms: Millis,
        text: &str,
    ) -> Result<Self, MessageError> {
        check_text(text)?;
        check_name(author_name)?;
        let body = Body {
            channel,
            author_name: author_name.to_owned(),
            timestamp_ms,
            text: text.to_owned(),
        };
        let body_bytes = postcard::to_stdvec(&body).map_err(|_| MessageError::Malformed)?;
        let signature = keypair
            .sign(&signing_input(&body_bytes))
            .map_err(|_| MessageError::UnsignableKey)?;
        Self::assemble(keypair.public(), body, signature)
    }

    /// Parses and verifies a message from untrusted bytes. Only the canonical
    /// encoding of a message is accepted: `decode(x)` succeeds only if
    /// `decode(x)?.encode() == x`.
    pub fn decode(wire: &[u8]) -> Result<Self, MessageError> {
        Self::decode_dated_until(wire, Millis::MAX)
    }

    /// Like [`Message::decode`], but refuses a message dated after
    /// `latest_ms` ([`MessageError::TooFarAhead`]) before its signature is
    /// checked, so a flood of such messages costs only their parsing.
    pub fn decode_dated_until(wire: &[u8], latest_ms: Millis) -> Result<Self, MessageError> {
        if wire.len() > MAX_WIRE_BYTES {
            return Err(MessageError::TooLarge(wire.len()));
        }
        let envelope: Envelope = postcard::from_bytes(wire).map_err(|_| MessageError::Malformed)?;
        let body: Body =
            postcard::from_bytes(&envelope.body).map_err(|_| MessageError::Malformed)?;
        if body.timestamp_ms > latest_ms {
            return Err(MessageError::TooFarAhead);
        }
        let key = PublicKey::try_decode_protobuf(&envelope.author_key)
            .map_err(|_| MessageError::BadKey)?;
        if !key.verify(&signing_input(&envelope.body), &envelope.signature) {
            return Err(MessageError::BadSignature);
        }
        check_text(&body.text)?;
        check_name(&body.author_name)?;
        let message = Self::assemble(key, body, envelope.signature)?;
        // Every part was parsed leniently (postcard ignores trailing bytes and
        // takes overlong varints); only the bytes this node would write itself
        // are the message.
        if message.wire != wire {
            return Err(MessageError::NotCanonical);
        }
        Ok(message)
    }

    fn assemble(
        author_key: PublicKey,
        body: Body,
        signature: Vec<u8>,
    ) -> Result<Self, MessageError> {
        let mut message = Self {
            id: MessageId([0; 32]),
            author: author_key.to_peer_id(),
            author_name: body.author_name,
            channel: body.channel,
            timestamp_ms: body.timestamp_ms,
            text: body.text,
            author_key,
            signature,
            wire: Vec::new(),
        };
        message.wire = message.encode()?;
        message.id = MessageId(*blake3::hash(&message.wire).as_bytes());
        Ok(message)
    }

    /// Writes the message's canonical encoding from its parts.
    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        let body = Body {
            channel: self.channel.clone(),
            author_name: self.author_name.clone(),
            timestamp_ms: self.timestamp_ms,
            text: self.text.clone(),
        };
        let envelope = Envelope {
            author_key: self.author_key.encode_protobuf(),
            body: postcard::to_stdvec(&body).map_err(|_| MessageError::Malformed)?,
            signature: self.signature.clone(),
        };
        postcard::to_stdvec(&envelope).map_err(|_| MessageError::Malformed)
    }

    /// The bytes that travel and are stored (the canonical encoding); `decode`
    /// turns them back.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }
}

fn signing_input(body: &[u8]) -> Vec<u8> {
    [SIGNING_DOMAIN, body].concat()
}

fn check_text(text: &str) -> Result<(), MessageError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(MessageError::TextTooLong(text.len()));
    }
    Ok(())
}

/// Checks a node nickname against ferry's limits.
pub fn check_name(name: &str) -> Result<(), MessageError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(MessageError::NameTooLong(name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err(MessageError::NameHasControl);
    }
    Ok(())
}

/// Why a message could not be built, decoded or verified.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MessageError {
    /// The text is over [`MAX_TEXT_BYTES`]; carries its length in bytes.
    #[error(
        "the message is {0} bytes; the limit is {MAX_TEXT_BYTES} bytes (64 KiB): share long text as a file instead"
    )]
    TextTooLong(usize),
    /// The author name is over [`MAX_NAME_BYTES`]; carries its length in bytes.
    #[error("a name is at most {MAX_NAME_BYTES} bytes; this one has {0}")]
    NameTooLong(usize),
    /// The author name contains a control character (which could rewrite a terminal
    /// line).
    #[error("a name cannot contain control characters")]
    NameHasControl,
    /// The encoded message is over [`MAX_WIRE_BYTES`]; carries its length in bytes.
    #[error("encoded message of {0} bytes exceeds the {MAX_WIRE_BYTES}-byte limit")]
    TooLarge(usize),
    /// The bytes do not decode as a message envelope and body.
    #[error("malformed message encoding")]
    Malformed,
    /// The bytes decode but are not what re-encoding gives, so two encodings of one
    /// message cannot get two ids.
    #[error("the message is not in its canonical encoding (extra or re-encoded bytes)")]
    NotCanonical,
    /// The author's public key in the envelope is not a valid ed25519 key.
    #[error("the author's public key is not a valid ed25519 key")]
    BadKey,
    /// The signature does not verify under the author's key: forged or corrupted.
    #[error("the signature does not match the author's key")]
    BadSignature,
    /// The author timestamp is more than [`crate::history::MAX_FUTURE_SKEW_MS`] ahead of
    /// this node's clock.
    #[error("the message is dated too far ahead of this node's clock")]
    TooFarAhead,
    /// The local keypair is of a type that cannot sign (only when posting, never from a
    /// peer).
    #[error("this key type cannot sign")]
    UnsignableKey,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn general() -> ChannelName {
        "general".parse().unwrap()
    }

    #[test]
    fn sign_then_decode_round_trips() {
        let key = Keypair::generate_ed25519();
        let msg = Message::sign(&key, general(), "ana", 1_700_000_000_000, "hello").unwrap();
        let back = Message::decode(msg.wire()).unwrap();
        assert_eq!(back, msg);
        assert_eq!(back.author, key.public().to_peer_id());
        assert_eq!(back.text, "hello");
    }

    #[test]
    fn oversize_text_is_refused_with_the_limit() {
        let key = Keypair::generate_ed25519();
        let text = "x".repeat(MAX_TEXT_BYTES + 1);
        let err = Message::sign(&key, general(), "ana", 0, &text).unwrap_err();
        assert_eq!(err, MessageError::TextTooLong(MAX_TEXT_BYTES + 1));
        assert!(err.to_string().contains("64 KiB"));
        assert!(Message::sign(&key, general(), "ana", 0, &text[1..]).is_ok());
    }

    #[test]
    fn a_tampered_body_fails_the_signature() {
        let key = Keypair::generate_ed25519();
        let msg = Message::sign(&key, general(), "ana", 5, "pay bob 10").unwrap();
        let mut envelope: Envelope = postcard::from_bytes(msg.wire()).unwrap();
        let mut body: Body = postcard::from_bytes(&envelope.body).unwrap();
        body.text = "pay eve 10".into();
        envelope.body = postcard::to_stdvec(&body).unwrap();
        let forged = postcard::to_stdvec(&envelope).unwrap();
        assert_eq!(Message::decode(&forged), Err(MessageError::BadSignature));
    }

    #[test]
    fn another_key_cannot_claim_authorship() {
        let ana = Keypair::generate_ed25519();
        let eve = Keypair::generate_ed25519();
        let msg = Message::sign(&ana, general(), "ana", 5, "hi").unwrap();
        let mut envelope: Envelope = postcard::from_bytes(msg.wire()).unwrap();
        envelope.author_key = eve.public().encode_protobuf();
        let forged = postcard::to_stdvec(&envelope).unwrap();
        assert_eq!(Message::decode(&forged), Err(MessageError::BadSignature));
    }

    #[test]
    fn channel_names_are_checked() {
        assert!("general".parse::<ChannelName>().is_ok());
        assert!("team-2.ops_x".parse::<ChannelName>().is_ok());
        assert_eq!("".parse::<ChannelName>(), Err(ChannelNameError::Empty));
        assert_eq!(
            ".hidden".parse::<ChannelName>(),
            Err(ChannelNameError::LeadingDot)
        );
        assert_eq!(
            "a/b".parse::<ChannelName>(),
            Err(ChannelNameError::BadCharacter('/'))
        );
        assert_eq!(
            "x".repeat(65).parse::<ChannelName>(),
            Err(ChannelNameError::TooLong(65))
        );
        let name = general();
        assert_eq!(ChannelName::from_topic(&name.topic()), Some(name));
        assert_eq!(ChannelName::from_topic("other/general"), None);
    }

    #[test]
    fn names_with_control_characters_are_refused() {
        let key = Keypair::generate_ed25519();
        let err = Message::sign(&key, general(), "ana\x1b[2J", 0, "hi").unwrap_err();
        assert_eq!(err, MessageError::NameHasControl);
    }

    #[test]
    fn a_message_dated_too_late_is_refused_before_its_signature_is_checked() {
        let key = Keypair::generate_ed25519();
        let msg = Message::sign(&key, general(), "ana", 1_000, "hi").unwrap();
        assert_eq!(
            Message::decode_dated_until(msg.wire(), 1_000),
            Ok(msg.clone())
        );
        assert_eq!(
            Message::decode_dated_until(msg.wire(), 999),
            Err(MessageError::TooFarAhead)
        );
        // A forged signature on a late message: the date is what refuses it.
        let mut envelope: Envelope = postcard::from_bytes(msg.wire()).unwrap();
        envelope.signature = vec![0; 64];
        let forged = postcard::to_stdvec(&envelope).unwrap();
        assert_eq!(
            Message::decode_dated_until(&forged, 999),
            Err(MessageError::TooFarAhead)
        );
        assert_eq!(Message::decode(&forged), Err(MessageError::BadSignature));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let key = Keypair::generate_ed25519();
        let msg = Message::sign(&key, general(), "ana", 5, "hi").unwrap();
        for extra in [&[0u8][..], &[1, 2, 3], &[0xff; 40]] {
            let replay = [msg.wire(), extra].concat();
            assert_eq!(Message::decode(&replay), Err(MessageError::NotCanonical));
        }
    }

    #[test]
    fn an_overlong_length_varint_is_refused() {
        let key = Keypair::generate_ed25519();
        let msg = Message::sign(&key, general(), "ana", 5, "hi").unwrap();
        // The envelope starts with the author key's length (< 128, one byte);
        // the same length as two bytes (0x80 | len, 0x00) decodes the same
        // value under postcard but is not the canonical form.
        let wire = msg.wire();
        assert!(wire[0] < 0x80);
        let padded = [&[wire[0] | 0x80, 0x00][..], &wire[1..]].concat();
        assert_eq!(Message::decode(&padded), Err(MessageError::NotCanonical));
    }

    #[test]
    fn a_non_canonical_body_is_refused_even_when_signed() {
        // The author's own signature over a padded body: it verifies, but the
        // body is not the one encoding of its fields.
        let key = Keypair::generate_ed25519();
        let msg = Message::sign(&key, general(), "ana", 5, "hi").unwrap();
        let mut envelope: Envelope = postcard::from_bytes(msg.wire()).unwrap();
        envelope.body.push(0);
        envelope.signature = key.sign(&signing_input(&envelope.body)).unwrap();
        let padded = postcard::to_stdvec(&envelope).unwrap();
        assert_eq!(Message::decode(&padded), Err(MessageError::NotCanonical));
    }

    fn any_message() -> impl Strategy<Value = Message> {
        (
            "[a-z0-9_.-]{1,20}",
            "[^\\p{Cc}]{0,16}",
            any::<u64>(),
            ".{0,300}",
        )
            .prop_filter_map("valid channel", |(channel, name, timestamp, text)| {
                let channel = channel.parse::<ChannelName>().ok()?;
                let key = Keypair::generate_ed25519();
                Message::sign(&key, channel, &name, timestamp, &text).ok()
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_the_message(msg in any_message()) {
            let wire = msg.encode().unwrap();
            prop_assert_eq!(&wire[..], msg.wire());
            prop_assert_eq!(Message::decode(&wire).unwrap(), msg);
        }

        /// Whatever a relay does to the bytes, anything accepted is exactly
        /// what the decoded message encodes to: one message, one wire, one id.
        #[test]
        fn what_decodes_is_canonical(
            msg in any_message(),
            cut in any::<prop::sample::Index>(),
            inserted in proptest::collection::vec(any::<u8>(), 0..4),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut wire = msg.wire().to_vec();
            let at = cut.index(wire.len() + 1);
            wire.splice(at..at, inserted);
            let i = flip.index(wire.len());
            wire[i] ^= 1 << bit;
            if let Ok(decoded) = Message::decode(&wire) {
                prop_assert_eq!(decoded.encode().unwrap(), wire.clone());
                prop_assert_eq!(decoded.wire(), &wire[..]);
                prop_assert_eq!(decoded.id, MessageId(*blake3::hash(&wire).as_bytes()));
            }
        }

        #[test]
        fn decode_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn any_flipped_bit_is_rejected_or_changes_nothing_signed(
            text in ".{0,200}", byte in any::<prop::sample::Index>(), bit in 0u8..8) {
            let key = Keypair::generate_ed25519();
            let msg = Message::sign(&key, general(), "ana", 42, &text).unwrap();
            let mut wire = msg.wire().to_vec();
            let i = byte.index(wire.len());
            wire[i] ^= 1 << bit;
            if let Ok(decoded) = Message::decode(&wire) {
                // Only the encoding can differ (e.g. a varint's padding); what was signed
                // is intact.
                prop_assert_eq!(decoded.text, msg.text);
                prop_assert_eq!(decoded.author, msg.author);
                prop_assert_eq!(decoded.timestamp_ms, msg.timestamp_ms);
            }
        }
    }
}
