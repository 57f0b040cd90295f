//! Just enough DER reading of X.509 for the servers: the commonName of a subject (device
//! client certificates) and a certificate's notAfter (renewing the self-signed one). Pure
//! and bounded: anything odd is `None`, never a panic.
//!
//! Not here: verifying certificates (rustls and webpki do that).

/// Splits one DER TLV off `input`: (tag, value, rest). Bounded; `None` on anything odd.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&b, rest) = rest.split_first()?;
            (usize::from(b), rest)
        }
        0x82 => {
            let bytes = rest.get(..2)?;
            (
                usize::from(u16::from_be_bytes([bytes[0], bytes[1]])),
                rest.get(2..)?,
            )
        }
        _ => return None,
    };
    let value = rest.get(..len)?;
    Some((tag, value, rest.get(len..)?))
}

/// The commonName of a DER-encoded Name (the contents of its outer SEQUENCE).
pub fn common_name(subject: &[u8]) -> Option<&[u8]> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let mut sets = subject;
    while let Some((0x31, set, rest)) = der_tlv(sets) {
        sets = rest;
        let mut attrs = set;
        while let Some((0x30, attr, more)) = der_tlv(attrs) {
            attrs = more;
            if let Some((0x06, oid, value)) = der_tlv(attr)
                && oid == CN
                && let Some((0x0c | 0x13 | 0x16, text, _)) = der_tlv(value)
            {
                return Some(text);
            }
        }
    }
    None
}

/// A certificate's notAfter, in seconds since the Unix epoch.
pub fn not_after(cert_der: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = der_tlv(cert_der)? else {
        return None;
    };
    let (0x30, tbs, _) = der_tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // [0] version is optional; then serialNumber, signature, issuer, validity.
    if rest.first() == Some(&0xa0) {
        rest = der_tlv(rest)?.2;
    }
    for _ in 0..3 {
        rest = der_tlv(rest)?.2;
    }
    let (0x30, validity, _) = der_tlv(rest)? else {
        return None;
    };
    let not_before_rest = der_tlv(validity)?.2;
    let (tag, time, _) = der_tlv(not_before_rest)?;
    parse_time(tag, time)
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = text.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        digits
            .get(range)?
            .iter()
            .try_fold(0i64, |acc, d| Some(acc * 10 + i64::from(d - b'0')))
    };
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        (0x18, 14) => (num(0..4)?, 4),
        _ => return None,
    };
    let field = |i: usize| num(rest + 2 * i..rest + 2 * i + 2);
    let (month, day) = (field(0)?, field(1)?);
    let (hour, minute, second) = (field(2)?, field(3)?, field(4)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(
        crate::ids::days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::days_from_civil;

    #[test]
    fn not_after_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            not_after(cert.der()),
            Some(days_from_civil(2031, 7, 9) * 86_400)
        );
        // GeneralizedTime after 2049.
        params.not_after = rcgen::date_time_ymd(2061, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            not_after(cert.der()),
            Some(days_from_civil(2061, 1, 2) * 86_400)
        );
        assert_eq!(not_after(b"garbage"), None);
        assert_eq!(not_after(&cert.der()[..40]), None);
    }

    #[test]
    fn malformed_times_are_refused() {
        assert_eq!(
            parse_time(0x17, b"310709000000Z"),
            Some(days_from_civil(2031, 7, 9) * 86_400)
        );
        assert_eq!(parse_time(0x17, b"311309000000Z"), None);
        assert_eq!(parse_time(0x17, b"3107090000+0Z"), None);
        assert_eq!(parse_time(0x18, b"310709000000Z"), None);
        assert_eq!(parse_time(0x17, b"310709000000"), None);
    }
}
