//! Which addresses an audit stream may reach: only globally routable ones. Everything else (loopback,
//! private, shared carrier-grade NAT and cloud metadata, link-local, documentation, benchmarking, multicast,
//! reserved) can only lead to the server's own network, which a stream must not be a way into.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::LazyLock,
};

use ipnet::{Ipv4Net, Ipv6Net};

/// IPv4 blocks that are not globally routable (IANA special-purpose registry, plus multicast and 240/4).
const BLOCKED_V4: [&str; 15] = [
    "0.0.0.0/8",       // "this network"
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // shared address space (carrier-grade NAT; 100.100.100.200 is a cloud metadata service)
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local (169.254.169.254: cloud metadata)
    "172.16.0.0/12",   // private
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // documentation (TEST-NET-1)
    "192.88.99.0/24",  // deprecated 6to4 relay anycast
    "192.168.0.0/16",  // private
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // documentation (TEST-NET-2)
    "203.0.113.0/24",  // documentation (TEST-NET-3)
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, including the broadcast address 255.255.255.255
];

/// IPv6 blocks inside global unicast (2000::/3) that are not globally routable anyway.
const BLOCKED_V6: [&str; 3] = [
    "2001::/23",     // IETF protocol assignments (Teredo, benchmarking, ORCHID, …)
    "2001:db8::/32", // documentation
    "3fff::/20",     // documentation
];

fn parsed<N: std::str::FromStr>(blocks: &[&str]) -> Vec<N>
where
    N::Err: std::fmt::Debug,
{
    blocks.iter().map(|b| b.parse().expect("static network blocks parse")).collect()
}

static V4: LazyLock<Vec<Ipv4Net>> = LazyLock::new(|| parsed(&BLOCKED_V4));
static V6: LazyLock<Vec<Ipv6Net>> = LazyLock::new(|| parsed(&BLOCKED_V6));
static GLOBAL_UNICAST: LazyLock<Ipv6Net> = LazyLock::new(|| "2000::/3".parse().expect("static block"));
static NAT64: LazyLock<Ipv6Net> = LazyLock::new(|| "64:ff9b::/96".parse().expect("static block"));
static SIX_TO_FOUR: LazyLock<Ipv6Net> = LazyLock::new(|| "2002::/16".parse().expect("static block"));

/// Whether `ip` is a globally routable unicast address.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    !V4.iter().any(|block| block.contains(&ip))
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    // Addresses that carry an IPv4 address reach that address: judge them by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_global_v4(v4);
    }
    let bits = u128::from(ip);
    if NAT64.contains(&ip) {
        return is_global_v4(Ipv4Addr::from(bits as u32));
    }
    if SIX_TO_FOUR.contains(&ip) {
        return is_global_v4(Ipv4Addr::from((bits >> 80) as u32));
    }
    // Only global unicast is routable; this excludes ::, ::1, IPv4-compatible ::/96, 100::/64, fc00::/7,
    // fe80::/10, fec0::/10 and ff00::/8 at once.
    GLOBAL_UNICAST.contains(&ip) && !V6.iter().any(|block| block.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_purpose_block_is_refused() {
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.100.100.200",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:100.100.100.200",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
        ];
        for ip in refused {
            assert!(!is_global(ip.parse().unwrap()), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let allowed = [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for ip in allowed {
            assert!(is_global(ip.parse().unwrap()), "{ip} must pass");
        }
    }
}
