//! Where a webhook request may go. Receivers are third parties reached from inside our network,
//! so a webhook URL must not become a way into it (SSRF):
//! - redirects are never followed (a 307 would re-post the signed body anywhere, plain http
//!   included): a 3xx fails the delivery for good;
//! - unless `notifications.allow_private_targets`, only public addresses are reached: loopback,
//!   private, link-local (cloud metadata), shared (CGNAT), unique-local, multicast and unspecified
//!   ones are refused. The check is on the addresses a name resolves to, at the moment of the
//!   request (the connection uses exactly those), so a name pointing inward, or re-pointed after
//!   start-up, is refused too; an IP literal is checked before sending and at start-up.
//!
//! With the check on, webhook requests do not go through `HTTP(S)_PROXY` (the proxy would
//! resolve the name instead, unchecked).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The HTTP client of webhook deliveries, and whether it may reach private addresses.
#[derive(Clone)]
pub struct WebhookClient {
    client: reqwest::Client,
    allow_private: bool,
}

impl WebhookClient {
    /// A client that never follows redirects and, unless `allow_private`, reaches public
    /// addresses only.
    pub fn new(allow_private: bool) -> Self {
        let mut builder = crate::infra::tls::http_client().redirect(reqwest::redirect::Policy::none());
        if !allow_private {
            builder = builder.dns_resolver(PublicOnly).no_proxy();
        }
        Self {
            client: builder
                .build()
                .expect("an HTTP client with default settings builds"),
            allow_private,
        }
    }

    pub(super) fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// Why `url` may not be requested (an IP literal that is not public), if it may not; names
    /// are checked when they are resolved.
    pub fn refuses(&self, url: &str) -> Option<String> {
        if self.allow_private {
            return None;
        }
        refused_literal(url)
    }
}

/// Why `url`'s host, when it is an IP literal, is not a public address.
pub(super) fn refused_literal(url: &str) -> Option<String> {
    // The URL parser writes IPv4 hosts in their usual form (`0x7f.1` becomes `127.0.0.1`).
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    (!is_public(ip)).then(|| not_public(ip))
}

fn not_public(ip: IpAddr) -> String {
    format!(
        "{} is not a public address (loopback, private, link-local, ...); set \
         notifications.allow_private_targets to reach it",
        kind_of(ip)
    )
}

/// What kind of address `ip` is, without the address itself (it may be internal topology).
fn kind_of(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => "the target, a loopback address,",
        IpAddr::V6(v6) if v6.is_loopback() => "the target, a loopback address,",
        _ => "the target",
    }
}

/// A target refused: it is, or resolves only to, addresses that are not public.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// Resolves names like the system does, keeping only public addresses; a name with none left
/// is [`Refused`].
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let Some(first) = found.first() else {
                    return Err(format!("{host} has no address").into());
                };
                return Err(Box::new(Refused(not_public(first.ip()))) as _);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// True for an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    let this_network = a == 0;
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || shared
        || this_network)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    // NAT64 (64:ff9b::/96) carries an IPv4 address: judge that one.
    if ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = ip.octets();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for inward in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(inward.parse().unwrap()), "{inward}");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn ip_literals_are_checked_names_wait_for_resolution() {
        assert!(refused_literal("http://127.0.0.1:9/hook").is_some());
        assert!(refused_literal("https://[::1]/hook").is_some());
        assert!(refused_literal("http://169.254.169.254/latest/meta-data").is_some());
        assert!(
            refused_literal("http://0x7f.1/hook").is_some(),
            "127.0.0.1 in disguise"
        );
        assert!(refused_literal("https://1.1.1.1/hook").is_none());
        assert!(
            refused_literal("https://hooks.example.com/x").is_none(),
            "checked when resolved"
        );
        assert!(WebhookClient::new(true).refuses("http://127.0.0.1/").is_none());
        assert!(WebhookClient::new(false).refuses("http://127.0.0.1/").is_some());
    }
}
