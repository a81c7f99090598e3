//! The UDP socket that sends and hears LAN beacons.
//!
//! Beacons go to the broadcast address of every IPv4 interface (a subnet
//! broadcast such as 192.168.1.255), not only to 255.255.255.255: the limited
//! broadcast needs a default route to leave a host, and a phone hotspot or an
//! ad-hoc cell often gives none. What a beacon says, and whether it is genuine,
//! is the core's business (`ferry_core::beacon`); this module only moves it.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use ferry_core::beacon::MAX_BEACON_BYTES;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

pub struct BeaconSocket {
    socket: UdpSocket,
    port: u16,
}

impl BeaconSocket {
    /// Binds the beacon port on all IPv4 interfaces. Several nodes on one host
    /// can share it (SO_REUSEPORT): each still hears every broadcast.
    pub fn bind(port: u16) -> io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_broadcast(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
        Ok(Self {
            socket: UdpSocket::from_std(socket.into())?,
            port,
        })
    }

    /// Broadcasts `datagram` on every interface that can broadcast. Returns how
    /// many interfaces it left on; errors on single interfaces are skipped, as an
    /// interface may go down at any time.
    pub async fn broadcast(&self, datagram: &[u8]) -> usize {
        let targets = broadcast_targets();
        let fallback = [Ipv4Addr::BROADCAST];
        let targets = if targets.is_empty() {
            &fallback[..]
        } else {
            &targets[..]
        };
        let mut sent = 0;
        for target in targets {
            match self
                .socket
                .send_to(datagram, SocketAddrV4::new(*target, self.port))
                .await
            {
                Ok(_) => sent += 1,
                Err(e) => tracing::debug!(%target, "beacon not sent: {e}"),
            }
        }
        sent
    }

    /// The next datagram and who sent it. Larger-than-beacon datagrams are cut
    /// at one byte over the limit, so the core sees them as too large.
    pub async fn recv(&self) -> io::Result<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; MAX_BEACON_BYTES + 1];
        let (len, from) = self.socket.recv_from(&mut buf).await?;
        buf.truncate(len);
        Ok((buf, from))
    }
}

/// The subnet broadcast address of each non-loopback IPv4 interface. It is
/// computed from the address and netmask rather than taken from the
/// interface's configured broadcast address, which is often missing (an
/// address added without `brd +`) or reported as the host's own address.
fn broadcast_targets() -> Vec<Ipv4Addr> {
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    let mut targets: Vec<Ipv4Addr> = interfaces
        .iter()
        .filter(|i| !i.is_loopback())
        .filter_map(|i| match &i.addr {
            if_addrs::IfAddr::V4(v4) => Some(subnet_broadcast(v4.ip, v4.netmask)),
            if_addrs::IfAddr::V6(_) => None,
        })
        .flatten()
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

/// The broadcast address of `ip`'s subnet; none for a /31 or /32, which have
/// no broadcast address (point-to-point links).
fn subnet_broadcast(ip: Ipv4Addr, netmask: Ipv4Addr) -> Option<Ipv4Addr> {
    let host_bits = !u32::from(netmask);
    (host_bits > 1).then(|| Ipv4Addr::from(u32::from(ip) | host_bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_broadcast_sets_host_bits() {
        let v4 = Ipv4Addr::new;
        assert_eq!(
            subnet_broadcast(v4(10, 77, 1, 5), v4(255, 255, 255, 0)),
            Some(v4(10, 77, 1, 255))
        );
        assert_eq!(
            subnet_broadcast(v4(172, 20, 3, 9), v4(255, 255, 240, 0)),
            Some(v4(172, 20, 15, 255))
        );
    }

    #[test]
    fn point_to_point_links_have_no_broadcast() {
        let v4 = Ipv4Addr::new;
        assert_eq!(
            subnet_broadcast(v4(10, 0, 0, 1), v4(255, 255, 255, 255)),
            None
        );
        assert_eq!(
            subnet_broadcast(v4(10, 0, 0, 1), v4(255, 255, 255, 254)),
            None
        );
    }
}
