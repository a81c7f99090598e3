//! Tickets: what `ferry share` prints and `ferry get` takes, like a magnet
//! link. A ticket names the content, what kind it is, a suggested name, and
//! one provider with the addresses it can be reached at.
//!
//! Text form: `ferry1` then the unpadded base32 (lowercase) of a postcard
//! encoding. Base32 survives being read aloud, typed, and double-clicked in a
//! terminal (no punctuation to break the selection); the `1` is the format
//! version.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD_NOCASE;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::ContentId;
use super::manifest::{PathProblem, component_problem};
use crate::{Multiaddr, PeerId};

/// The most provider addresses a ticket carries.
pub const MAX_TICKET_ADDRS: usize = 8;
/// The longest ticket text, in characters.
pub const MAX_TICKET_CHARS: usize = 2048;

const PREFIX: &str = "ferry1";

/// What a ticket's content id names: a file, or a collection manifest listing files.
/// In JSON (the control API) `blob` or `collection`; in a ticket (postcard)
/// the variant's index, so the names do not reach the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentKind {
    /// A single file's bytes.
    Blob,
    /// A manifest listing a directory tree.
    Collection,
}

crate::named_enum!(ContentKind {
    Blob => "blob",
    Collection => "collection",
});

/// A decoded ticket: what to fetch and one provider to ask first. Parsing checks its
/// length, address count and suggested name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The content's BLAKE3 hash; everything fetched is verified against it.
    pub id: ContentId,
    /// Whether `id` is a file or a collection manifest.
    pub kind: ContentKind,
    /// The file or directory name to save as, when the sharer gave one.
    pub name: Option<String>,
    /// The peer that holds the content and is asked first, usually the one that made the
    /// ticket.
    pub provider: PeerId,
    /// Where `provider` listens, best first.
    pub addrs: Vec<Multiaddr>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    id: ContentId,
    kind: ContentKind,
    name: Option<String>,
    provider: Vec<u8>,
    addrs: Vec<Vec<u8>>,
}

impl Wire {
    fn text(&self) -> String {
        let bytes = postcard::to_stdvec(self).expect("a ticket always encodes");
        format!(
            "{PREFIX}{}",
            BASE32_NOPAD_NOCASE.encode(&bytes).to_ascii_lowercase()
        )
    }
}

/// Always yields a ticket that parses back: it keeps only the first
/// addresses that fit the limits, and leaves out a name that is not a safe
/// file name.
impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wire = Wire {
            id: self.id,
            kind: self.kind,
            name: self
                .name
                .clone()
                .filter(|name| component_problem(name).is_none()),
            provider: self.provider.to_bytes(),
            addrs: self
                .addrs
                .iter()
                .take(MAX_TICKET_ADDRS)
                .map(Multiaddr::to_vec)
                .collect(),
        };
        let mut text = wire.text();
        while text.len() > MAX_TICKET_CHARS && wire.addrs.pop().is_some() {
            text = wire.text();
        }
        f.write_str(&text)
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    /// Whitespace anywhere is ignored, so a ticket wrapped by a terminal or
    /// mail client, or pasted with spaces around it, still reads.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.chars().count() > MAX_TICKET_CHARS {
            return Err(TicketError::TooLong(compact.chars().count()));
        }
        let compact = compact.to_ascii_lowercase();
        let Some(body) = compact.strip_prefix(PREFIX) else {
            let newer = compact
                .strip_prefix("ferry")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
            return Err(if newer {
                TicketError::NewerFormat
            } else {
                TicketError::NotATicket
            });
        };
        let bytes = BASE32_NOPAD_NOCASE
            .decode(body.as_bytes())
            .map_err(|_| TicketError::Corrupt)?;
        let (wire, rest) =
            postcard::take_from_bytes::<Wire>(&bytes).map_err(|_| TicketError::Corrupt)?;
        if !rest.is_empty() {
            return Err(TicketError::Corrupt);
        }
        if wire.addrs.len() > MAX_TICKET_ADDRS {
            return Err(TicketError::TooManyAddrs(wire.addrs.len()));
        }
        if let Some(name) = &wire.name
            && let Some(problem) = component_problem(name)
        {
            return Err(TicketError::BadName {
                name: name.clone(),
                problem,
            });
        }
        Ok(Self {
            id: wire.id,
            kind: wire.kind,
            name: wire.name,
            provider: PeerId::from_bytes(&wire.provider).map_err(|_| TicketError::Corrupt)?,
            addrs: wire
                .addrs
                .into_iter()
                .map(Multiaddr::try_from)
                .collect::<Result<_, _>>()
                .map_err(|_| TicketError::Corrupt)?,
        })
    }
}

/// Why a text is not a usable ticket. The messages speak to the user who pasted it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TicketError {
    /// The text does not start with `ferry1` nor with another ferry version prefix.
    #[error(
        "this is not a ferry ticket (a ticket starts with \"{PREFIX}\"); to fetch by content id, give its 64 hex digits"
    )]
    NotATicket,
    /// The text starts with `ferry` and a version other than 1: made by a newer ferry.
    #[error("this ticket was made by a newer ferry: upgrade ferry to use it")]
    NewerFormat,
    /// The text is over [`MAX_TICKET_CHARS`]; carries its length in characters.
    #[error(
        "this ticket is {0} characters, more than the {MAX_TICKET_CHARS} a ticket may have: was other text pasted with it?"
    )]
    TooLong(usize),
    /// The base32 or the encoding inside does not decode, or has bytes left over.
    #[error("this ticket is damaged: copy it again, whole")]
    Corrupt,
    /// More addresses than [`MAX_TICKET_ADDRS`]; carries how many.
    #[error("this ticket lists {0} addresses; a ticket carries at most {MAX_TICKET_ADDRS}")]
    TooManyAddrs(usize),
    /// The suggested name is not a safe single path component (it could escape the
    /// download directory).
    #[error("this ticket names the download {name:?}, which {problem}: refused")]
    BadName {
        /// The name as the ticket gives it.
        name: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;
    use proptest::prelude::*;

    fn peer(seed: u8) -> PeerId {
        Keypair::ed25519_from_bytes([seed; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    fn sample() -> Ticket {
        Ticket {
            id: ContentId::of(b"hello"),
            kind: ContentKind::Blob,
            name: Some("hello.txt".into()),
            provider: peer(1),
            addrs: vec![
                "/ip4/192.168.1.20/udp/4433/quic-v1".parse().unwrap(),
                "/ip6/fe80::1/tcp/4433".parse().unwrap(),
            ],
        }
    }

    /// A ticket's payload, for tests to forge tickets Display would not make.
    fn wire_of(ticket: &Ticket) -> Wire {
        Wire {
            id: ticket.id,
            kind: ticket.kind,
            name: ticket.name.clone(),
            provider: ticket.provider.to_bytes(),
            addrs: ticket.addrs.iter().map(Multiaddr::to_vec).collect(),
        }
    }

    #[test]
    fn round_trips_and_looks_like_a_ticket() {
        let ticket = sample();
        let text = ticket.to_string();
        assert!(text.starts_with("ferry1"));
        assert!(
            text.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_eq!(text.parse::<Ticket>().unwrap(), ticket);
        assert_eq!(ContentKind::Collection.as_str(), "collection");
        assert_eq!(ContentKind::Blob.as_str(), "blob");
    }

    #[test]
    fn pasted_with_whitespace_or_in_capitals_still_parses() {
        let text = sample().to_string();
        let (a, b) = text.split_at(40);
        let messy = format!("  \n{a}\n  {b}\t\r\n");
        assert_eq!(messy.parse::<Ticket>().unwrap(), sample());
        assert_eq!(text.to_uppercase().parse::<Ticket>().unwrap(), sample());
    }

    #[test]
    fn errors_say_what_went_wrong() {
        let id = ContentId::of(b"x").to_string();
        assert_eq!(id.parse::<Ticket>(), Err(TicketError::NotATicket));
        assert!(
            TicketError::NotATicket
                .to_string()
                .contains("64 hex digits")
        );
        assert_eq!("ferry2abc".parse::<Ticket>(), Err(TicketError::NewerFormat));
        assert_eq!("ferry1".parse::<Ticket>(), Err(TicketError::Corrupt));
        assert_eq!("ferry1!!!!".parse::<Ticket>(), Err(TicketError::Corrupt));
        let text = sample().to_string();
        assert_eq!(
            text[..text.len() - 3].parse::<Ticket>(),
            Err(TicketError::Corrupt)
        );
        let long = format!("{text}{}", "a".repeat(MAX_TICKET_CHARS));
        assert!(matches!(
            long.parse::<Ticket>(),
            Err(TicketError::TooLong(_))
        ));
    }

    #[test]
    fn a_forged_ticket_cannot_smuggle_a_path_or_many_addresses() {
        let mut wire = wire_of(&sample());
        wire.name = Some("../../.bashrc".into());
        assert_eq!(
            wire.text().parse::<Ticket>(),
            Err(TicketError::BadName {
                name: "../../.bashrc".into(),
                problem: PathProblem::Slash
            })
        );
        wire.name = Some("..".into());
        let err = wire.text().parse::<Ticket>().unwrap_err();
        assert!(
            err.to_string().contains("leaves the target directory"),
            "{err}"
        );
        wire.name = None;
        wire.addrs = vec!["/ip4/10.0.0.1/tcp/1".parse::<Multiaddr>().unwrap().to_vec(); 9];
        assert_eq!(
            wire.text().parse::<Ticket>(),
            Err(TicketError::TooManyAddrs(9))
        );
        wire.addrs = vec![vec![0xff, 0xff]];
        assert_eq!(wire.text().parse::<Ticket>(), Err(TicketError::Corrupt));
        wire.addrs = vec![];
        wire.provider = vec![1, 2, 3];
        assert_eq!(wire.text().parse::<Ticket>(), Err(TicketError::Corrupt));
    }

    #[test]
    fn display_keeps_within_the_limits() {
        let mut ticket = sample();
        ticket.name = Some("bad/name".into());
        let long_addr: Multiaddr = format!("/dns4/{}.example/tcp/1", "h".repeat(250))
            .parse()
            .unwrap();
        ticket.addrs = vec![long_addr; 12];
        let text = ticket.to_string();
        assert!(text.len() <= MAX_TICKET_CHARS);
        let back: Ticket = text.parse().unwrap();
        assert_eq!(back.name, None);
        assert!(!back.addrs.is_empty() && back.addrs.len() < MAX_TICKET_ADDRS);
        assert_eq!(back.addrs[..], ticket.addrs[..back.addrs.len()]);
    }

    fn addr() -> impl Strategy<Value = Multiaddr> {
        (any::<[u8; 4]>(), any::<u16>(), any::<bool>()).prop_map(|(ip, port, quic)| {
            let ip = std::net::Ipv4Addr::from(ip);
            let text = if quic {
                format!("/ip4/{ip}/udp/{port}/quic-v1")
            } else {
                format!("/ip4/{ip}/tcp/{port}")
            };
            text.parse().unwrap()
        })
    }

    proptest! {
        #[test]
        fn any_ticket_round_trips(
            id in any::<[u8; 32]>(),
            collection in any::<bool>(),
            name in proptest::option::of("[a-zA-Z0-9 ._-]{1,60}"),
            seed in any::<u8>(),
            addrs in proptest::collection::vec(addr(), 0..=MAX_TICKET_ADDRS)) {
            let ticket = Ticket {
                id: ContentId(id),
                kind: if collection { ContentKind::Collection } else { ContentKind::Blob },
                name: name.filter(|n| n != "." && n != ".."),
                provider: peer(seed),
                addrs,
            };
            let text = ticket.to_string();
            prop_assert!(text.len() <= MAX_TICKET_CHARS);
            prop_assert_eq!(format!(" {text}\n").parse::<Ticket>(), Ok(ticket));
        }

        #[test]
        fn garbage_never_panics(text in ".{0,300}", body in "[a-z2-7]{0,300}") {
            let _ = text.parse::<Ticket>();
            let _ = format!("ferry1{body}").parse::<Ticket>();
        }

        #[test]
        fn no_strict_prefix_of_a_ticket_parses(cut in any::<prop::sample::Index>()) {
            let text = sample().to_string();
            let cut = cut.index(text.len());
            prop_assert!(text[..cut].parse::<Ticket>().is_err());
        }
    }
}
