//! RFC 3339 times in UTC, without a date crate: the session logs record
//! them (`# session … started 2026-03-04T10:11:12Z`), `remoteagentctl logs`
//! shows them and `--since` accepts them. Times are milliseconds since the
//! Unix epoch, as everywhere in the protocol.

/// `ms` as `2026-03-04T10:11:12Z`, or with `millis` `2026-03-04T10:11:12.345Z`.
pub fn format(ms: u64, millis: bool) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let clock = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if millis {
        format!("{clock}.{:03}Z", ms % 1000)
    } else {
        format!("{clock}Z")
    }
}

/// Parses `2026-03-04T10:11:12Z`, with optional fractional seconds and a
/// `±HH:MM` offset instead of `Z` (a space may stand for the `T`, as RFC
/// 3339 allows). `None` for anything else, or a time before 1970.
pub fn parse(text: &str) -> Option<u64> {
    let b = text.trim().as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = std::str::from_utf8(b.get(from..from + len)?).ok()?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, s) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=days_in_month(y, mo)).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut at = 19;
    let mut frac_ms = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        let digits = std::str::from_utf8(&b[start..at.min(start + 3)]).ok()?;
        frac_ms = digits.parse::<i64>().ok()? * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_min = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let (oh, om) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let total = oh * 60 + om;
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_min * 60;
    let ms = secs.checked_mul(1000)? + frac_ms;
    u64::try_from(ms).ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01, the inverse of
/// [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        assert_eq!(format(0, false), "1970-01-01T00:00:00Z");
        assert_eq!(civil_from_days(20_516), (2026, 3, 4));
        let ms = 1_772_619_072_345; // 2026-03-04T10:11:12.345Z
        assert_eq!(format(ms, true), "2026-03-04T10:11:12.345Z");
        assert_eq!(parse("2026-03-04T10:11:12.345Z"), Some(ms));
        assert_eq!(parse("2026-03-04T10:11:12Z"), Some(ms - 345));
        assert_eq!(parse("2026-03-04 11:11:12.3456+01:00"), Some(ms));
        assert_eq!(parse("2026-03-04T05:11:12.345-05:00"), Some(ms));
        assert_eq!(parse("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        for day in [0u64, 59, 365, 10_000, 20_000, 40_000] {
            let ms = day * 86_400_000 + 3_723_000;
            assert_eq!(parse(&format(ms, false)), Some(ms));
        }
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in [
            "",
            "10m",
            "2026-03-04",
            "2026-03-04T10:11:12",
            "2026-13-04T10:11:12Z",
            "2025-02-29T10:11:12Z",
            "2026-03-04T24:11:12Z",
            "2026-03-04T10:11:12.Z",
            "2026-03-04T10:11:12+0100",
            "1969-12-31T23:59:59Z",
            "2026-03-04T10:11:12Zjunk",
            "２026-03-04T10:11:12Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
