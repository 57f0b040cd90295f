//! Just enough DER reading of X.509 for the servers: the commonName of a subject (device
//! client certificates) and a certificate's notAfter (renewing the self-signed one), and
//! the calendar arithmetic both directions of that need. Pure and bounded: anything odd is
//! `None`, never a panic.
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
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1–12, day 1–31) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (month 1–12, day 1–31).
    (year, month as u8, day as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        for d in (-800_000..800_000).step_by(997) {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(day)), d);
        }
    }

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
