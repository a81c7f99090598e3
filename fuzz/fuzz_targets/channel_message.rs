//! Channel messages (gossip and history): `ferry_core::channel::Message::decode`
//! over bytes from anyone.
//!
//! The first byte picks the input's meaning: even, the rest is a message as
//! it arrives; odd, the next byte picks a fixed key and the rest is the signed
//! body, wrapped and signed here, so mutations reach past the signature check.
//!
//! Properties: nothing panics; an accepted message's id is the hash of its
//! bytes, its fields are within the limits, its channel's topic names it back;
//! with the pending `channel-canonical` check, decoding is canonical:
//! re-encoding what was decoded gives the input back (otherwise anyone could
//! replay one signed message as many "new" ones).
#![no_main]

use ferry_core::PublicKey;
use ferry_core::channel::{ChannelName, MAX_TEXT_BYTES, Message, check_name};
use ferry_fuzz::{CHANNEL_DOMAIN, Envelope, Script, envelope};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;

/// What a message's signature covers (ferry-core's `Body`, same layout).
#[derive(Serialize)]
struct Body<'a> {
    channel: &'a str,
    author_name: &'a str,
    timestamp_ms: u64,
    text: &'a str,
}

/// The encoding of `message`, built from what was decoded.
fn encode(message: &Message, envelope: &Envelope) -> Vec<u8> {
    let key = PublicKey::try_decode_protobuf(&envelope.key).expect("the key decoded before");
    let body = Body {
        channel: message.channel.as_str(),
        author_name: &message.author_name,
        timestamp_ms: message.timestamp_ms,
        text: &message.text,
    };
    postcard::to_stdvec(&Envelope {
        key: key.encode_protobuf(),
        signed: postcard::to_stdvec(&body).expect("a body encodes"),
        signature: envelope.signature.clone(),
    })
    .expect("an envelope encodes")
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script::new(data);
    let wire = if !s.bool() {
        s.rest().to_vec()
    } else {
        let key = s.u8();
        envelope(key, CHANNEL_DOMAIN, s.rest())
    };
    let Ok(message) = Message::decode(&wire) else {
        return;
    };
    assert_eq!(message.wire(), &wire[..]);
    assert_eq!(message.id.0, *blake3::hash(&wire).as_bytes());
    assert!(message.text.len() <= MAX_TEXT_BYTES);
    assert!(check_name(&message.author_name).is_ok());
    let topic = message.channel.topic();
    assert_eq!(
        ChannelName::from_topic(&topic).as_ref(),
        Some(&message.channel)
    );
    let outer: Envelope = postcard::from_bytes(&wire).expect("the envelope decoded before");
    assert_eq!(
        encode(&message, &outer),
        wire,
        "decoding is not canonical: another encoding of this message is accepted"
    );
});
