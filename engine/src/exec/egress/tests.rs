//! The egress rules, one test per rule: parsing, the built-in denials, deny over allow, the allow list.

use std::net::SocketAddr;

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn rules(texts: &[&str]) -> Vec<Rule> {
    texts.iter().map(|t| Rule::parse(t).unwrap()).collect()
}

#[test]
fn rules_parse_hosts_domains_addresses_and_networks() {
    assert_eq!(
        Rule::parse("API.Example.com"),
        Ok(Rule::Host("api.example.com".into()))
    );
    assert_eq!(
        Rule::parse("*.example.com"),
        Ok(Rule::Host("*.example.com".into()))
    );
    assert_eq!(
        Rule::parse("10.0.0.0/8"),
        Ok(Rule::Net("10.0.0.0".parse().unwrap(), 8))
    );
    assert_eq!(
        Rule::parse("::1"),
        Ok(Rule::Net("::1".parse().unwrap(), 128))
    );
    for bad in [
        "",
        "10.0.0.0/33",
        "fe80::/129",
        "x/8",
        "a b",
        "http://x",
        "*.",
    ] {
        let err = Rule::parse(bad).unwrap_err();
        assert!(
            err.contains(&format!("{:?}", bad.trim())) || bad.is_empty(),
            "{bad}: {err}"
        );
    }
}

#[test]
fn link_local_is_denied_by_default_also_as_a_mapped_address() {
    let egress = Egress::default();
    for denied in [
        "169.254.169.254:80",
        "[fe80::1]:80",
        "[::ffff:169.254.169.254]:80",
    ] {
        let err = egress.check_addr("metadata", addr(denied)).unwrap_err();
        assert!(err.contains("denied by default"), "{denied}: {err}");
    }
    egress
        .check_addr("example.com", addr("93.184.216.34:443"))
        .unwrap();
    egress
        .check_addr("localhost", addr("127.0.0.1:8080"))
        .unwrap();
}

#[test]
fn the_nodes_own_listener_is_denied_on_every_local_address() {
    let egress = Egress::new(Vec::new(), Vec::new(), Some(addr("0.0.0.0:7070")));
    for denied in ["127.0.0.1:7070", "[::1]:7070", "0.0.0.0:7070"] {
        assert!(egress.check_addr("self", addr(denied)).is_err(), "{denied}");
    }
    egress.check_addr("self", addr("127.0.0.1:7071")).unwrap();
    egress.check_addr("other", addr("10.0.0.5:7070")).unwrap();
    let on_loopback = Egress::new(Vec::new(), Vec::new(), Some(addr("127.0.0.1:7070")));
    assert!(
        on_loopback
            .check_addr("self", addr("127.0.0.1:7070"))
            .is_err()
    );
}

#[test]
fn an_allow_rule_permits_a_default_denial_and_a_deny_rule_beats_it() {
    let egress = Egress::new(rules(&["169.254.169.254"]), rules(&["10.0.0.0/8"]), None);
    egress
        .check_addr("metadata", addr("169.254.169.254:80"))
        .unwrap();
    assert!(egress.check_addr("other", addr("169.254.1.1:80")).is_err());

    let egress = Egress::new(rules(&["10.0.0.0/8"]), rules(&["10.0.0.13"]), None);
    let err = egress.check_addr("db", addr("10.0.0.13:5432")).unwrap_err();
    assert!(err.contains("10.0.0.13/32"), "{err}");
}

#[test]
fn a_non_empty_allow_list_denies_what_it_does_not_name() {
    let egress = Egress::new(
        rules(&["*.example.com", "192.168.1.0/24"]),
        Vec::new(),
        None,
    );
    egress
        .check_addr("api.example.com", addr("93.184.216.34:443"))
        .unwrap();
    egress
        .check_addr("printer", addr("192.168.1.20:80"))
        .unwrap();
    let err = egress
        .check_addr("example.com", addr("93.184.216.34:443"))
        .unwrap_err();
    assert!(err.contains("egress.allow"), "{err}");
    assert!(egress.check_addr("evil.test", addr("1.2.3.4:80")).is_err());
}

#[test]
fn denied_host_names_are_refused_before_resolving() {
    let egress = Egress::new(Vec::new(), rules(&["*.internal.test", "vault.test"]), None);
    assert!(egress.check_host("db.internal.test").is_err());
    assert!(egress.check_host("VAULT.test.").is_err());
    egress.check_host("internal.test").unwrap();
    egress.check_host("example.com").unwrap();
}
