//! Durations as people type them (`300ms`, `5s`, `2m`, `1h30m`) and as tables show them.

use std::time::Duration;

/// Parses a human duration: a number and a unit (`ns`, `us`, `ms`, `s`, `m`, `h`, `d`),
/// possibly several (`1m30s`). A bare number is refused: the unit is not guessed.
/// Negative and zero durations are errors for the caller to decide on: this parser
/// refuses a leading `-` with a message that says so and returns zero as zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration (write e.g. 30s, 500ms, 5m)".into());
    }
    if t.starts_with('-') {
        return Err(format!("{t:?} is negative: a duration must be positive"));
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("{t:?} has no unit (write e.g. {t}s or {t}ms)"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{t:?} is not a duration ({e}); write e.g. 30s, 500ms, 5m"))
}

/// Formats a duration compactly for tables and messages: `300ms`, `5s`, `2m30s`, `1h`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return if d.is_zero() {
            "0s".into()
        } else {
            format!("{}us", d.as_micros())
        };
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if !ms.is_multiple_of(1000) && ms < 60_000 {
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    let mut s = (ms / 1000) as u64;
    let mut out = String::new();
    let h = s / 3600;
    if h > 0 {
        out.push_str(&format!("{h}h"));
        s %= 3600;
    }
    let m = s / 60;
    if m > 0 {
        out.push_str(&format!("{m}m"));
        s %= 60;
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// [`format_duration`] of a millisecond count.
pub fn format_ms(ms: u64) -> String {
    format_duration(Duration::from_millis(ms))
}

/// Parses a rate as tc writes it, into bits per second: `10mbit`, `512kbit`, `1gbit`,
/// `800bit`, or bytes per second with `bps` (`kbps`, `mbps`, `gbps`). Units are
/// decimal (k = 1000), as in tc. A bare number is refused.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "{text:?} is not a rate (write e.g. 10mbit, 512kbit, 1gbit)"
        ));
    }
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a rate (write e.g. 10mbit)"))?;
    let mult: f64 = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        "" => {
            return Err(format!(
                "{text:?} has no unit (write e.g. {num}mbit or {num}kbit)"
            ));
        }
        other => {
            return Err(format!(
                "{text:?}: unknown rate unit {other:?} (use bit, kbit, mbit, gbit, or bps, kbps, mbps)"
            ));
        }
    };
    let bits = n * mult;
    if !bits.is_finite() || bits > u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bits.round() as u64)
}

/// Parses a memory size: `512MiB`, `2GiB`, `64M`, `100KiB`, `1G` (binary units; a
/// bare number is refused).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (write e.g. 512MiB, 2GiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "" => {
            return Err(format!(
                "{text:?} has no unit (write e.g. {num}MiB or {num}GiB)"
            ));
        }
        other => {
            return Err(format!(
                "{text:?}: unknown size unit {other:?} (use KiB, MiB, GiB)"
            ));
        }
    };
    let v = n * mult as f64;
    if !v.is_finite() || v > u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(v as u64)
}

/// Formats a size in binary units, exactly when it can: `1GiB`, `256MiB`, `1.5GiB`,
/// `4096B`.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        let div = 1u64 << shift;
        if bytes >= div {
            if bytes.is_multiple_of(div) {
                return format!("{}{unit}", bytes / div);
            }
            return format!("{:.1}{unit}", bytes as f64 / div as f64);
        }
    }
    format!("{bytes}B")
}

/// Formats bits per second as tc does: `10mbit`, `512kbit`, `1500bit`.
pub fn format_rate(bits: u64) -> String {
    for (div, unit) in [
        (1_000_000_000, "gbit"),
        (1_000_000, "mbit"),
        (1_000, "kbit"),
    ] {
        if bits >= div && bits.is_multiple_of(div) {
            return format!("{}{unit}", bits / div);
        }
    }
    if bits >= 1_000_000 {
        return format!("{:.1}mbit", bits as f64 / 1e6);
    }
    format!("{bits}bit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(format_size(1 << 30), "1GiB");
        assert_eq!(format_size(3 << 29), "1.5GiB");
        assert_eq!(format_size(100), "100B");
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert!(parse_size("100").unwrap_err().contains("no unit"));
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn rates_parse_like_tc() {
        assert_eq!(parse_rate("10mbit").unwrap(), 10_000_000);
        assert_eq!(parse_rate("512kbit").unwrap(), 512_000);
        assert_eq!(parse_rate("1gbit").unwrap(), 1_000_000_000);
        assert_eq!(parse_rate("100kbps").unwrap(), 800_000);
        assert_eq!(parse_rate("1.5mbit").unwrap(), 1_500_000);
        assert!(parse_rate("10").unwrap_err().contains("no unit"));
        assert!(parse_rate("10 furlongs").is_err());
        assert!(parse_rate("mbit").is_err());
        assert_eq!(format_rate(10_000_000), "10mbit");
        assert_eq!(format_rate(512_000), "512kbit");
        assert_eq!(format_rate(1500), "1500bit");
    }

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_negative_and_unitless() {
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("").is_err());
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_ms(300), "300ms");
        assert_eq!(format_ms(5000), "5s");
        assert_eq!(format_ms(1500), "1.5s");
        assert_eq!(format_ms(150_000), "2m30s");
        assert_eq!(format_ms(3_600_000), "1h");
    }
}
