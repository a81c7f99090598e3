//! Tickets: `ferry_core::content::Ticket` parsed from text anyone can paste.
//!
//! The first byte picks the input's meaning: even, the rest is the text;
//! odd, the rest is the ticket's binary body, written out here as a ticket
//! (prefix and base32), so mutations reach the binary decoding.
//!
//! Properties: nothing panics; an accepted ticket has at most
//! `MAX_TICKET_ADDRS` addresses and a name that is a safe file name, and its
//! text form parses back to the same content, kind, name and provider.
#![no_main]

use data_encoding::BASE32_NOPAD;
use ferry_core::content::{MAX_TICKET_ADDRS, Ticket, check_component};
use ferry_fuzz::Script;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = Script::new(data);
    let text = if !s.bool() {
        String::from_utf8_lossy(s.rest()).into_owned()
    } else {
        format!(
            "ferry1{}",
            BASE32_NOPAD.encode(s.rest()).to_ascii_lowercase()
        )
    };
    let Ok(ticket) = text.parse::<Ticket>() else {
        return;
    };
    assert!(ticket.addrs.len() <= MAX_TICKET_ADDRS);
    if let Some(name) = &ticket.name {
        assert!(
            check_component(name).is_ok(),
            "unsafe name {name:?} accepted"
        );
    }
    let again: Ticket = ticket
        .to_string()
        .parse()
        .expect("a ticket's text form parses");
    assert_eq!(again.id, ticket.id);
    assert_eq!(again.kind, ticket.kind);
    assert_eq!(again.name, ticket.name);
    assert_eq!(again.provider, ticket.provider);
});
