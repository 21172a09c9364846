//! Who the client is: the peer of the connection, or, when that peer is a trusted proxy
//! (`[api] trusted_proxies`), the address the proxies name in `Forwarded` or
//! `X-Forwarded-For`.
//!
//! Each proxy appends the address it got the request from, so the list is read from the
//! right: entries written by trusted proxies are skipped, and the first one that is not a
//! trusted proxy is the client. Anything to its left was written by the client itself and
//! is ignored, so a client cannot choose its own bucket by sending the header. From a peer
//! that is not trusted, the headers are ignored altogether.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::{Error, Result};

/// An address block: an address and how many leading bits of it are the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    bits: u8,
}

impl Cidr {
    /// `"10.0.0.0/8"`, `"2001:db8::/32"`, or a single address (`"192.0.2.1"`).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, bits) = match text.trim().split_once('/') {
            Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        if bits > max {
            return None;
        }
        Some(Cidr {
            network: mask(addr, bits),
            bits,
        })
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.bits) == self.network
    }
}

/// `ip` with only its first `bits` bits kept.
fn mask(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose word on the client's address is taken.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// The blocks of `[api] trusted_proxies`; an entry that is not one is refused by name.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies> {
        entries
            .iter()
            .map(|e| {
                Cidr::parse(e).ok_or_else(|| {
                    Error::Options(format!(
                        "trusted_proxies: {e:?} is not an address or a CIDR block (\"10.0.0.0/8\")"
                    ))
                })
            })
            .collect::<Result<_>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let named = forwarded_for(headers);
        let mut client = peer;
        for hop in named.iter().rev() {
            match hop {
                // A hop the proxies could not name (`unknown`, an obfuscated id): the
                // nearest address known is as far as the chain can be followed.
                None => return client,
                Some(ip) => {
                    client = canonical(*ip);
                    if !self.trusts(client) {
                        return client;
                    }
                }
            }
        }
        client
    }
}

/// The addresses the proxies named, first hop first: `Forwarded`'s `for=` when the header
/// is there (RFC 7239), else `X-Forwarded-For`; `None` for an entry that is no address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = (headers.get_all("forwarded").iter())
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return (forwarded.iter())
            .flat_map(|v| v.split(','))
            .map(|element| {
                let node = element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
                })?;
                node_address(node.trim_matches('"'))
            })
            .collect();
    }
    (headers.get_all("x-forwarded-for").iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|e| node_address(e.trim()))
        .collect()
}

/// The address of a node as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let private = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(private.contains(ip("10.200.3.4")));
        assert!(private.contains(ip("::ffff:10.1.1.1")), "IPv4-mapped");
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(!private.contains(ip("2001:db8::1")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let one = Cidr::parse("192.0.2.1").unwrap();
        assert!(one.contains(ip("192.0.2.1")) && !one.contains(ip("192.0.2.2")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("198.51.100.1"))
        );
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0/8", "::/129", ""] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
        let err = TrustedProxies::parse(&["10.0.0.0/8".into(), "proxy.lan".into()]).unwrap_err();
        assert!(err.to_string().contains("proxy.lan"), "{err}");
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_client() {
        let none = TrustedProxies::default();
        let spoofed = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=198.51.100.3"),
        ]);
        assert_eq!(none.client(ip("192.0.2.7"), &spoofed), ip("192.0.2.7"));
        let lan = proxies(&["10.0.0.0/8"]);
        assert_eq!(lan.client(ip("192.0.2.7"), &spoofed), ip("192.0.2.7"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_what_the_client_wrote_is_ignored() {
        let lan = proxies(&["10.0.0.0/8", "fd00::/8"]);
        let peer = ip("10.0.0.2");
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(lan.client(peer, &h), ip("203.0.113.9"));
        // The client wrote 1.2.3.4 itself; two proxies appended what they saw.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.5")]);
        assert_eq!(lan.client(peer, &h), ip("203.0.113.9"));
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(lan.client(peer, &h), ip("203.0.113.9"), "repeated headers");
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::7]:4711\";proto=https, for=fd00::1",
        )]);
        assert_eq!(lan.client(peer, &h), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "for=unknown"), ("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(lan.client(peer, &h), peer, "Forwarded wins; unknown stops");
        assert_eq!(lan.client(peer, &HeaderMap::new()), peer, "no header");
        let h = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.8")]);
        assert_eq!(lan.client(peer, &h), ip("10.0.0.9"), "only proxies");
        let h = headers(&[("x-forwarded-for", "203.0.113.9:5555")]);
        assert_eq!(lan.client(peer, &h), ip("203.0.113.9"), "with a port");
    }
}
