//! Networking: `cidrsubnet` and `cidrhost`, for IPv4 and IPv6.
//!
//! Invariants: pure, no host access; Terraform semantics unless documented
//! here. Addresses are held in a `u128` (IPv4 in the low 32 bits), so the
//! arithmetic cannot overflow; a negative host number counts back from the
//! end of the range (-1 is the last address).

use super::args::{quote, Args};
use super::FnError;
use crate::value::Value;
use std::net::{Ipv4Addr, Ipv6Addr};

struct Cidr {
    /// 32 for IPv4, 128 for IPv6.
    bits: u32,
    /// Network address (host bits cleared).
    addr: u128,
    prefix: u32,
}

fn low_ones(n: u32) -> u128 {
    if n >= 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    }
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let Some((ip, len)) = s.split_once('/') else {
        return Err(format!("{} is not in CIDR notation; expected an address and a prefix length such as \"10.0.0.0/16\"", quote(s)));
    };
    let (bits, addr) = if let Ok(v4) = ip.parse::<Ipv4Addr>() {
        (32, u128::from(u32::from(v4)))
    } else if let Ok(v6) = ip.parse::<Ipv6Addr>() {
        (128, u128::from(v6))
    } else {
        return Err(format!("{} is not a valid IPv4 or IPv6 address", quote(ip)));
    };
    let prefix = if !len.is_empty() && len.len() <= 3 && len.bytes().all(|b| b.is_ascii_digit()) { len.parse::<u32>().ok() } else { None };
    match prefix {
        Some(prefix) if prefix <= bits => Ok(Cidr { bits, addr: addr & !low_ones(bits - prefix), prefix }),
        _ => {
            Err(format!("{} is not a valid prefix length for an IPv{} address; expected a number from 0 to {bits}", quote(len), if bits == 32 { 4 } else { 6 }))
        }
    }
}

fn format_addr(bits: u32, addr: u128) -> String {
    if bits == 32 {
        Ipv4Addr::from((addr & 0xffff_ffff) as u32).to_string()
    } else {
        Ipv6Addr::from(addr).to_string()
    }
}

pub(super) fn f_cidrsubnet(a: &Args) -> Result<Value, FnError> {
    let prefix = a.string(0)?;
    let cidr = parse_cidr(&prefix).map_err(|m| FnError::at(0, m))?;
    let newbits = a.int(1)?;
    let netnum = a.int(2)?;
    let room = cidr.bits - cidr.prefix;
    let newbits_u = match u32::try_from(newbits) {
        Ok(n) if n <= room => n,
        Ok(_) => {
            return Err(FnError::at(
                1,
                format!("insufficient address space to extend prefix of {} by {newbits} bits; at most {room} new bits fit", cidr.prefix),
            ))
        }
        Err(_) => return Err(FnError::at(1, format!("expected a non-negative number of new bits as the second argument, found {newbits}"))),
    };
    let Ok(net) = u64::try_from(netnum) else {
        return Err(FnError::at(2, format!("expected a non-negative subnet number as the third argument, found {netnum}")));
    };
    if u128::from(net) > low_ones(newbits_u) {
        return Err(FnError::at(2, format!("prefix extension of {newbits} bits does not accommodate a subnet numbered {netnum}")));
    }
    let new_prefix = cidr.prefix + newbits_u;
    let shift = cidr.bits - new_prefix;
    let addr = cidr.addr | u128::from(net).checked_shl(shift).unwrap_or(0);
    Ok(Value::String(format!("{}/{new_prefix}", format_addr(cidr.bits, addr))))
}

pub(super) fn f_cidrhost(a: &Args) -> Result<Value, FnError> {
    let prefix = a.string(0)?;
    let cidr = parse_cidr(&prefix).map_err(|m| FnError::at(0, m))?;
    let hostnum = a.int(1)?;
    let max = low_ones(cidr.bits - cidr.prefix);
    let magnitude = u128::from(hostnum.unsigned_abs());
    let offset = if hostnum >= 0 {
        (magnitude <= max).then_some(magnitude)
    } else {
        // -1 is the last address of the range.
        let back = magnitude - 1;
        (back <= max).then(|| max - back)
    };
    let Some(offset) = offset else {
        return Err(FnError::at(1, format!("prefix of {} does not accommodate a host numbered {hostnum}", cidr.prefix)));
    };
    Ok(Value::String(format_addr(cidr.bits, cidr.addr | offset)))
}

#[cfg(test)]
mod tests {
    use crate::eval::functions::test_support::*;

    #[test]
    fn cidrsubnet_ipv4_and_ipv6() {
        let sub = |p: &str, nb: i64, n: i64| ok("cidrsubnet", vec![s(p), i(nb), i(n)]);
        same(&sub("172.16.0.0/12", 4, 2), &s("172.18.0.0/16"));
        same(&sub("10.1.2.0/24", 4, 15), &s("10.1.2.240/28"));
        same(&sub("10.1.2.3/16", 8, 1), &s("10.1.1.0/24"));
        same(&sub("10.0.0.0/8", 0, 0), &s("10.0.0.0/8"));
        same(&sub("0.0.0.0/0", 32, 5), &s("0.0.0.5/32"));
        same(&sub("fd00:fd12:3456:7890::/56", 16, 162), &s("fd00:fd12:3456:7800:a200::/72"));
        same(&sub("::/0", 0, 0), &s("::/0"));
        same(&sub("::/0", 64, 1), &s("0:0:0:1::/64"));
        same(&sub("2001:db8::/32", 96, 7), &s("2001:db8::7/128"));
        err_has("cidrsubnet", vec![s("10.0.0.0/30"), i(3), i(0)], Some(1), "insufficient address space to extend prefix of 30 by 3");
        err_has("cidrsubnet", vec![s("10.0.0.0/8"), i(-1), i(0)], Some(1), "non-negative number of new bits");
        err_has("cidrsubnet", vec![s("10.0.0.0/8"), i(8), i(256)], Some(2), "does not accommodate a subnet numbered 256");
        err_has("cidrsubnet", vec![s("10.0.0.0/8"), i(8), i(-1)], Some(2), "non-negative subnet number");
        err_has("cidrsubnet", vec![s("10.0.0.0"), i(8), i(1)], Some(0), "is not in CIDR notation");
        err_has("cidrsubnet", vec![s("10.0.0.300/8"), i(8), i(1)], Some(0), "not a valid IPv4 or IPv6 address");
        err_has("cidrsubnet", vec![s("10.0.0.0/33"), i(1), i(1)], Some(0), "expected a number from 0 to 32");
        err_has("cidrsubnet", vec![s("::/129"), i(1), i(1)], Some(0), "IPv6");
        err_has("cidrsubnet", vec![s("10.0.0.0/+8"), i(1), i(1)], Some(0), "not a valid prefix length");
        err_has("cidrsubnet", vec![s("10.0.0.0/"), i(1), i(1)], Some(0), "not a valid prefix length");
    }

    #[test]
    fn cidrhost_ipv4_and_ipv6() {
        let host = |p: &str, n: i64| ok("cidrhost", vec![s(p), i(n)]);
        same(&host("10.12.112.0/20", 16), &s("10.12.112.16"));
        same(&host("10.12.112.0/20", 268), &s("10.12.113.12"));
        same(&host("10.12.112.0/20", -2), &s("10.12.127.254"));
        same(&host("10.0.0.0/8", -1), &s("10.255.255.255"));
        same(&host("10.0.0.5/32", 0), &s("10.0.0.5"));
        same(&host("10.0.0.5/32", -1), &s("10.0.0.5"));
        same(&host("fd00:fd12:3456:7890:00a2::/72", 34), &s("fd00:fd12:3456:7890::22"));
        same(&host("::/0", -1), &s("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        same(&host("::/0", i64::MIN), &s("ffff:ffff:ffff:ffff:8000::"));
        same(&host("0.0.0.0/0", -1), &s("255.255.255.255"));
        err_has("cidrhost", vec![s("10.12.112.0/20"), i(4096)], Some(1), "prefix of 20 does not accommodate a host numbered 4096");
        err_has("cidrhost", vec![s("10.12.112.0/20"), i(-4097)], Some(1), "does not accommodate a host numbered -4097");
        same(&host("10.12.112.0/20", -4096), &s("10.12.112.0"));
        err_has("cidrhost", vec![s("10.0.0.5/32"), i(1)], Some(1), "does not accommodate");
        err_has("cidrhost", vec![s("nope/8"), i(1)], Some(0), "not a valid IPv4 or IPv6 address");
        err_has("cidrhost", vec![s("10.0.0.0/8"), f(1.5)], Some(1), "whole number");
    }
}
