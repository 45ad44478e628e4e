//! Who is asking: the real client of a request, and the key its limits
//! are counted under (how often each may ask for what costs something is
//! counted in the state: `state::limits`; how many connections it holds,
//! in `connection`).
//!
//! Behind a reverse proxy every request comes from the proxy, so the
//! client is the address the proxy forwards for; but those headers are
//! whatever a client writes unless a trusted proxy wrote them. Only the
//! proxies named in `[serve] trusted_proxies` are believed, and the client
//! is the last address before them in the chain (RFC 7239 `Forwarded`, or
//! else `X-Forwarded-For`), so a client cannot choose its own key.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// Who a limit counts: an IPv4 address, or the /64 network of an IPv6
/// address. A home line or a phone is given a whole /64 and may use any
/// address in it, so counting IPv6 addresses one by one would give one
/// client 2^64 keys. An IPv4 address mapped into IPv6 is that IPv4
/// address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(address: IpAddr) -> ClientKey {
        match address {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The client of a request that came from `peer` with these headers.
pub fn address(
    peer: IpAddr,
    forwarded: Option<&str>,
    x_forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let chain: Vec<Option<IpAddr>> = match (forwarded, x_forwarded_for) {
        (Some(forwarded), _) => forwarded
            .split(',')
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| node_address(value))?
                })
            })
            .collect(),
        (None, Some(list)) => list.split(',').map(node_address).collect(),
        (None, None) => return peer,
    };
    // From the nearest hop back: the first one not a trusted proxy. An
    // entry that is no address (`unknown`, an obfuscated name) ends the
    // walk: what lies before it cannot be trusted, so the last proxy is
    // the key.
    let mut client = peer;
    for hop in chain.iter().rev() {
        match hop {
            Some(address) if is_trusted(address) => client = *address,
            Some(address) => return *address,
            None => return client,
        }
    }
    client
}

/// An address from a `Forwarded` node or an `X-Forwarded-For` entry:
/// `192.0.2.1`, `"[2001:db8::1]:4711"`, `198.51.100.7:80`.
fn node_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|net| net.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_network_of_64_bits() {
        let key = |text: &str| ClientKey::of(ip(text)).to_string();
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
        // Every address of one /64 is one client; the next /64 another.
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_ne!(
            ClientKey::of(ip("203.0.113.9")),
            ClientKey::of(ip("203.0.113.10"))
        );
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim() {
        assert_eq!(
            address(ip("203.0.113.9"), None, Some("198.51.100.1"), &[]),
            ip("203.0.113.9")
        );
        assert_eq!(
            address(
                ip("203.0.113.9"),
                Some("for=198.51.100.1"),
                None,
                &nets(&["127.0.0.1/32"])
            ),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_last_untrusted_hop_is_the_client() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        // A client prepending a fake address cannot choose its key.
        assert_eq!(
            address(
                ip("127.0.0.1"),
                None,
                Some("1.2.3.4, 198.51.100.7, 10.0.0.2"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            address(
                ip("127.0.0.1"),
                Some("for=1.2.3.4, for=\"[2001:db8::17]:4711\";proto=https"),
                Some("9.9.9.9"),
                &trusted
            ),
            ip("2001:db8::17")
        );
        assert_eq!(
            address(ip("127.0.0.1"), None, Some("198.51.100.7:5555"), &trusted),
            ip("198.51.100.7")
        );
        // Nothing forwarded, or only proxies, or an unknown hop: the proxy.
        assert_eq!(
            address(ip("127.0.0.1"), None, None, &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            address(ip("127.0.0.1"), None, Some("10.0.0.5"), &trusted),
            ip("10.0.0.5")
        );
        assert_eq!(
            address(ip("127.0.0.1"), Some("for=unknown"), None, &trusted),
            ip("127.0.0.1")
        );
    }
}
