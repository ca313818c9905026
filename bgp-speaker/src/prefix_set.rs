//! The set of prefixes a peer has announced to us, packed for a full table.
//!
//! The speaker only originates routes; it keeps what it receives solely to count it
//! exactly (max-prefix, status): a re-announcement is not counted twice and a withdraw
//! of something never announced takes nothing off. A `HashSet<IpNet>` did that at about
//! 60 bytes a prefix (1M prefixes: 60 MiB). Here:
//!
//! - IPv4 up to /24 (nearly all of a real table): one bitmap per prefix length, 2^len
//!   bits, allocated zeroed on first use. A zeroed allocation of this size comes from
//!   fresh anonymous pages, so only the pages a table actually touches count in RSS: all
//!   of 2^24 /24s fit in 2 MiB, every length up to /24 together in 4 MiB.
//! - IPv4 /25 to /32 and IPv6: hash sets of the network bits, one per length, so a key
//!   is a `u32` or `u64` (IPv6 longer than /64 is rare and keyed by `u128`).

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The longest IPv4 prefix kept in a bitmap.
const V4_BITMAP_MAX: u8 = 24;

#[derive(Debug, Default)]
pub(crate) struct PrefixSet {
    count: usize,
    /// Index = prefix length (0..=24); `None` until the first prefix of that length.
    v4_bits: Vec<Option<Box<[u64]>>>,
    /// Index = prefix length - 25.
    v4_long: Vec<HashSet<u32>>,
    /// Index = prefix length (0..=64): the top `len` bits of the address.
    v6_short: Vec<HashSet<u64>>,
    v6_long: HashSet<(u128, u8)>,
}

impl PrefixSet {
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Frees everything (a session that went down forgets what it received).
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Adds a prefix; true if it was not there. Host bits are ignored.
    pub(crate) fn insert(&mut self, p: &IpNet) -> bool {
        let added = match p {
            IpNet::V4(n) => self.v4_set(n, true),
            IpNet::V6(n) => self.v6_set(n, true),
        };
        self.count += usize::from(added);
        added
    }

    /// Removes a prefix; true if it was there.
    pub(crate) fn remove(&mut self, p: &IpNet) -> bool {
        let removed = match p {
            IpNet::V4(n) => self.v4_set(n, false),
            IpNet::V6(n) => self.v6_set(n, false),
        };
        self.count -= usize::from(removed);
        removed
    }

    /// Sets (`on`) or clears the bit or key of `n`; true if that changed anything.
    fn v4_set(&mut self, n: &Ipv4Net, on: bool) -> bool {
        let len = n.prefix_len();
        let net = v4_bits(n.addr(), len);
        if len <= V4_BITMAP_MAX {
            let i = usize::from(len);
            if self.v4_bits.len() <= i {
                if !on {
                    return false;
                }
                self.v4_bits.resize_with(i + 1, || None);
            }
            let map = match &mut self.v4_bits[i] {
                Some(m) => m,
                None if !on => return false,
                slot @ None => slot.insert(vec![0u64; bitmap_words(len)].into_boxed_slice()),
            };
            let (word, bit) = (net as usize / 64, 1u64 << (net % 64));
            let was = map[word] & bit != 0;
            if on {
                map[word] |= bit;
            } else {
                map[word] &= !bit;
            }
            was != on
        } else {
            let i = usize::from(len - V4_BITMAP_MAX - 1);
            if self.v4_long.len() <= i {
                self.v4_long.resize_with(i + 1, HashSet::new);
            }
            toggle(&mut self.v4_long[i], net, on)
        }
    }

    fn v6_set(&mut self, n: &Ipv6Net, on: bool) -> bool {
        let len = n.prefix_len();
        let net = v6_bits(n.addr(), len);
        if len <= 64 {
            let i = usize::from(len);
            if self.v6_short.len() <= i {
                self.v6_short.resize_with(i + 1, HashSet::new);
            }
            // The top `len` bits fit in a u64 once shifted down.
            toggle(&mut self.v6_short[i], net as u64, on)
        } else {
            toggle(&mut self.v6_long, (net, len), on)
        }
    }
}

fn toggle<T: std::hash::Hash + Eq>(set: &mut HashSet<T>, key: T, on: bool) -> bool {
    if on {
        set.insert(key)
    } else {
        set.remove(&key)
    }
}

fn bitmap_words(len: u8) -> usize {
    ((1usize << len) / 64).max(1)
}

/// The network bits of a v4 prefix, right-aligned (`0` for /0).
fn v4_bits(addr: Ipv4Addr, len: u8) -> u32 {
    u32::from(addr)
        .checked_shr(32 - u32::from(len))
        .unwrap_or(0)
}

/// The network bits of a v6 prefix, right-aligned (`0` for /0).
fn v6_bits(addr: Ipv6Addr, len: u8) -> u128 {
    u128::from(addr)
        .checked_shr(128 - u32::from(len))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet as Model;

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn counts_each_prefix_once_and_ignores_unknown_withdraws() {
        let mut s = PrefixSet::default();
        for x in [
            "10.0.0.0/8",
            "10.0.0.0/24",
            "10.0.1.0/24",
            "0.0.0.0/0",
            "192.0.2.128/25",
            "192.0.2.1/32",
            "2001:db8::/32",
            "2001:db8::/48",
            "2001:db8::1/128",
            "::/0",
        ] {
            assert!(s.insert(&p(x)), "{x}");
            assert!(!s.insert(&p(x)), "{x} twice");
        }
        assert_eq!(s.len(), 10);
        assert!(!s.remove(&p("10.0.2.0/24")));
        assert!(!s.remove(&p("10.0.0.0/9")));
        assert!(!s.remove(&p("2001:db8::/33")));
        assert!(!s.remove(&p("10.0.0.0/30")));
        assert_eq!(s.len(), 10);
        assert!(s.remove(&p("10.0.0.0/24")));
        assert!(s.remove(&p("2001:db8::1/128")));
        assert!(!s.remove(&p("2001:db8::1/128")));
        assert_eq!(s.len(), 8);
        s.clear();
        assert_eq!(s.len(), 0);
        assert!(!s.remove(&p("10.0.0.0/8")));
    }

    #[test]
    fn host_bits_do_not_make_a_different_prefix() {
        let mut s = PrefixSet::default();
        assert!(s.insert(&p("10.1.2.3/24")));
        assert!(!s.insert(&p("10.1.2.0/24")));
        assert!(s.remove(&p("10.1.2.200/24")));
        assert!(s.insert(&p("2001:db8::5/64")));
        assert!(!s.insert(&p("2001:db8::/64")));
    }

    /// Against a plain HashSet of truncated prefixes, over a pseudo-random mix of
    /// lengths and operations.
    #[test]
    fn agrees_with_a_hash_set() {
        let mut s = PrefixSet::default();
        let mut model = Model::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v6 = x & 1 == 1;
            // Few distinct addresses, so that removes and re-inserts hit.
            let a = (x >> 8) & 0xfff;
            let net: IpNet = if v6 {
                let len = ((x >> 24) % 129) as u8;
                let addr = Ipv6Addr::from((a as u128) << 116 | (a as u128));
                IpNet::V6(Ipv6Net::new(addr, len).unwrap())
            } else {
                let len = ((x >> 24) % 33) as u8;
                let addr = Ipv4Addr::from((a as u32) << 20 | (a as u32));
                IpNet::V4(Ipv4Net::new(addr, len).unwrap())
            };
            let insert = !(x >> 40).is_multiple_of(3);
            let (got, want) = if insert {
                (s.insert(&net), model.insert(net.trunc()))
            } else {
                (s.remove(&net), model.remove(&net.trunc()))
            };
            assert_eq!(
                got,
                want,
                "{} {net}",
                if insert { "insert" } else { "remove" }
            );
            assert_eq!(s.len(), model.len());
        }
    }
}
