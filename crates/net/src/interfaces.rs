//! This host's network interfaces, as far as ferry cares: whether an address
//! is on one of our own subnets (a LAN peer).

use std::net::IpAddr;

/// Whether `ip` is on the subnet of one of this host's non-loopback
/// interfaces.
pub fn on_local_subnet(ip: IpAddr) -> bool {
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return false;
    };
    interfaces
        .iter()
        .filter(|i| !i.is_loopback())
        .any(|i| match (&i.addr, ip) {
            (if_addrs::IfAddr::V4(v4), IpAddr::V4(ip)) => {
                let mask = u32::from(v4.netmask);
                u32::from(v4.ip) & mask == u32::from(ip) & mask
            }
            (if_addrs::IfAddr::V6(v6), IpAddr::V6(ip)) => {
                let mask = u128::from(v6.netmask);
                u128::from(v6.ip) & mask == u128::from(ip) & mask
            }
            _ => false,
        })
}
