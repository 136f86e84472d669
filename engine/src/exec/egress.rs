//! [`Egress`]: where HTTP targets (and the runtime's webhooks) may connect: allow and deny lists of host
//! names and networks, checked on the names in URLs and on every address a name resolves to.
//!
//! Denied by default, whatever the lists say unless an allow rule names them: link-local networks
//! (`169.254.0.0/16`, `fe80::/10`: cloud metadata services answer there with the node's credentials) and
//! the node's own API listener (a job must not drive the API with the node's network position). An explicit
//! deny rule beats an allow rule; with a non-empty allow list, what it does not name is denied.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// One allow or deny rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A host name, exactly (`api.example.com`), or a domain's subdomains (`*.example.com`).
    Host(String),
    /// A network (`10.0.0.0/8`, `fd00::/8`; a bare address is a `/32` or `/128`).
    Net(IpAddr, u8),
    /// One address and port (the node's own listener).
    Socket(IpAddr, u16),
}

impl Rule {
    /// Parses `host`, `*.domain`, `ip`, `ip/prefix`; the error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some((ip, prefix)) = text.split_once('/') {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("{text:?}: {ip:?} is not an IP address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max}"))?;
            return Ok(Rule::Net(ip, prefix));
        }
        if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(Rule::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        let name = text.strip_prefix("*.").unwrap_or(text);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            return Err(format!(
                "{text:?} is not a host name, *.domain, IP address or network like 10.0.0.0/8"
            ));
        }
        Ok(Rule::Host(text.to_ascii_lowercase()))
    }

    fn matches_host(&self, host: &str) -> bool {
        match self {
            Rule::Host(rule) => match rule.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                None => host == rule,
            },
            _ => false,
        }
    }

    fn matches_addr(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        match *self {
            Rule::Net(net, prefix) => in_network(ip, canonical(net), prefix),
            Rule::Socket(rule, port) => {
                port == addr.port()
                    && (canonical(rule) == ip || (rule.is_unspecified() && is_local(ip)))
            }
            Rule::Host(_) => false,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Host(host) => f.write_str(host),
            Rule::Net(ip, prefix) => write!(f, "{ip}/{prefix}"),
            Rule::Socket(ip, port) => write!(f, "{}", SocketAddr::new(*ip, *port)),
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:169.254.169.254`) are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The egress policy of a node (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Egress {
    inner: Arc<Lists>,
}

#[derive(Debug)]
struct Lists {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    builtin: Vec<Rule>,
}

impl Default for Egress {
    /// Only the built-in denials (link-local networks).
    fn default() -> Self {
        Self::new(Vec::new(), Vec::new(), None)
    }
}

impl Egress {
    /// A policy from the lists, denying link-local networks and, if given, the node's own listener.
    pub fn new(allow: Vec<Rule>, deny: Vec<Rule>, own_listener: Option<SocketAddr>) -> Self {
        let mut builtin = vec![
            Rule::Net(IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
            Rule::Net(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
        ];
        if let Some(listener) = own_listener {
            builtin.push(Rule::Socket(listener.ip(), listener.port()));
            if !listener.ip().is_loopback() {
                // Loopback reaches a listener on any address of the machine.
                builtin.push(Rule::Socket(
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    listener.port(),
                ));
                builtin.push(Rule::Socket(
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                    listener.port(),
                ));
            }
        }
        Self {
            inner: Arc::new(Lists {
                allow,
                deny,
                builtin,
            }),
        }
    }

    /// Whether a URL's host name may be connected to at all (before resolving it); the error is the reason.
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let lists = &self.inner;
        if let Some(rule) = lists.deny.iter().find(|r| r.matches_host(&host)) {
            return Err(format!("egress: host {host} is denied (rule {rule})"));
        }
        Ok(())
    }

    /// Whether `addr`, which `host` resolved to (or which the URL named), may be connected to.
    pub fn check_addr(&self, host: &str, addr: SocketAddr) -> Result<(), String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let lists = &self.inner;
        if let Some(rule) = lists.deny.iter().find(|r| r.matches_addr(addr)) {
            return Err(format!("egress: {addr} is denied (rule {rule})"));
        }
        let allowed = lists
            .allow
            .iter()
            .any(|r| r.matches_host(&host) || r.matches_addr(addr));
        if allowed {
            return Ok(());
        }
        if let Some(rule) = lists.builtin.iter().find(|r| r.matches_addr(addr)) {
            return Err(format!(
                "egress: {addr} is denied by default (rule {rule}: link-local networks and the node's own \
                 listener); an egress.allow rule can permit it"
            ));
        }
        if !lists.allow.is_empty() {
            return Err(format!("egress: {host} ({addr}) is not in egress.allow"));
        }
        Ok(())
    }
}

#[cfg(feature = "http")]
mod client {
    //! The policy in a `reqwest` client: a resolver that drops denied addresses, no redirects (or, when a
    //! job asks for them, redirects checked hop by hop), and a check of the URL before each request.

    use std::net::SocketAddr;

    use reqwest::dns::{Addrs, Name, Resolve, Resolving};

    use super::Egress;

    /// Resolves with the system resolver, then keeps only the addresses the policy permits: so a name that
    /// resolves (or re-resolves) to a denied address is never connected to.
    struct Guarded(Egress);

    impl Resolve for Guarded {
        fn resolve(&self, name: Name) -> Resolving {
            let egress = self.0.clone();
            Box::pin(async move {
                let host = name.as_str().to_owned();
                let addrs: Vec<SocketAddr> =
                    tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
                let mut last = None;
                let permitted: Vec<SocketAddr> = addrs
                    .into_iter()
                    .filter(|addr| match egress.check_addr(&host, *addr) {
                        Ok(()) => true,
                        Err(reason) => {
                            last = Some(reason);
                            false
                        }
                    })
                    .collect();
                if permitted.is_empty() {
                    let reason = last.unwrap_or_else(|| format!("{host} did not resolve"));
                    return Err(reason.into());
                }
                Ok(Box::new(permitted.into_iter()) as Addrs)
            })
        }
    }

    impl Egress {
        /// A client builder that obeys the policy: the guarded resolver, and redirects only if `redirects`
        /// (at most 5, each hop checked).
        pub fn client_builder(&self, redirects: bool) -> reqwest::ClientBuilder {
            let builder = reqwest::Client::builder()
                .dns_resolver(std::sync::Arc::new(Guarded(self.clone())))
                // A proxy would resolve the name itself, out of the policy's reach.
                .no_proxy();
            let policy = if redirects {
                let egress = self.clone();
                reqwest::redirect::Policy::custom(move |attempt| {
                    if attempt.previous().len() >= 5 {
                        return attempt.error("more than 5 redirects");
                    }
                    match egress.check_url(attempt.url()) {
                        Ok(()) => attempt.follow(),
                        Err(reason) => attempt.error(reason),
                    }
                })
            } else {
                reqwest::redirect::Policy::none()
            };
            builder.redirect(policy)
        }

        /// Checks what a URL says without resolving it: its host name against the lists, and an address in
        /// it (`http://169.254.169.254/`, `http://127.0.0.1:7070/`), which no resolver sees, with its port.
        pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
            let port = url.port_or_known_default().unwrap_or(0);
            let host = url
                .host_str()
                .ok_or_else(|| "egress: the URL has no host".to_owned())?;
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<std::net::IpAddr>() {
                Ok(ip) => self.check_addr(bare, SocketAddr::new(ip, port)),
                Err(_) => self.check_host(host),
            }
        }

        /// [`Egress::check_url`], then every address the URL's host name resolves to, with the URL's port
        /// (the resolver inside the client sees no port, so the own-listener rule is checked here).
        pub async fn check_destination(&self, url: &reqwest::Url) -> Result<(), String> {
            self.check_url(url)?;
            let Some(host) = url.host_str() else {
                return Ok(());
            };
            if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
                return Ok(());
            }
            let port = url.port_or_known_default().unwrap_or(0);
            let addrs = tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("failed to resolve the host: {e}"))?;
            for addr in addrs {
                self.check_addr(host, addr)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
